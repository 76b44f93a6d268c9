"""What every request handler reaches through ``request.app.state.gateway``."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import Engine

from api.auth import Authenticator
from api.inference import Inference
from api.jobs import JobStore
from api.links import Links
from api.metrics import Metrics
from api.settings import Settings
from api.stow import Assembler
from api.worker import Workers


@dataclass
class Gateway:
    """Everything a request handler needs, on ``request.app.state.gateway``."""

    settings: Settings
    engine: Engine
    store: JobStore
    inference: Inference
    metrics: Metrics
    auth: Authenticator
    workers: Workers
    assembler: Assembler
    links: Links


def gateway(request: Request) -> Gateway:
    return request.app.state.gateway  # type: ignore[no-any-return]

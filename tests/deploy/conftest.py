"""Each deployable overlay, rendered once per session, and the gateway app whose routes and
settings the manifests must agree with."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_manifests import K8S, OVERLAYS, Manifests, render
from fastapi import FastAPI

from api.app import create_app
from api.settings import Settings


@pytest.fixture(scope="session", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> Manifests:
    return Manifests(request.param, render(K8S / "overlays" / request.param))


@pytest.fixture(scope="session")
def gateway_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    """The gateway as the manifests run it (not started: routes and OpenAPI only)."""
    data = tmp_path_factory.mktemp("gateway")
    return create_app(Settings(data_dir=Path(data)))

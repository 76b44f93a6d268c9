"""The reliability drills: hostile input, load, faults and security against real processes.

`make test` runs them in their short profile; `make reliability` runs the full profile (1,000
analyses of soak, more fuzzing) and regenerates docs/reliability.md from what they record."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_report import render  # type: ignore[import-not-found]
from reliability_support import DRILL_ENV, FIGURES  # type: ignore[import-not-found]

from api.process import GatewayProcess, start_gateway
from ich.serving.server import TritonServer


@pytest.fixture(scope="module")
def drilled(
    triton: TritonServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A gateway of this module's own on the session's Triton (logs kept for the PHI check)."""
    running = start_gateway(
        tmp_path_factory.mktemp("drilled") / "data", triton.grpc_url, **DRILL_ENV
    )
    yield running
    running.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Writes the figures and docs/reliability.md when asked (``make reliability``)."""
    target = os.environ.get("ICH_RELIABILITY_REPORT")
    if not target or len(FIGURES) <= 1:
        return
    FIGURES["outcome"] = "passed" if exitstatus == 0 else f"FAILED (pytest exit {exitstatus})"
    Path(target).with_suffix(".json").write_text(json.dumps(FIGURES, indent=2, default=str))
    Path(target).write_text(render(FIGURES))

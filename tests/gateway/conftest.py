"""An in-process app for request-level tests, and a real PostgreSQL on a free port of 127.0.0.1
stopped by its process id (the gateway process itself is a fixture of tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from postgres_cluster import PostgresCluster  # type: ignore[import-not-found]

from api.app import create_app
from api.settings import Settings
from ich.serving.server import TritonServer


@pytest.fixture
def app_client(triton: TritonServer, tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """An in-process app on a fresh SQLite, with settings overridden per test."""
    opened: list[TestClient] = []

    def build(**overrides: object) -> TestClient:
        values = {"data_dir": tmp_path / f"app{len(opened)}", "triton_url": triton.grpc_url}
        settings = Settings.model_validate(values | overrides)
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield build
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 for the session."""
    try:
        cluster = PostgresCluster().start()
    except (FileNotFoundError, RuntimeError) as error:
        pytest.fail(str(error))
    yield cluster.url
    cluster.remove()

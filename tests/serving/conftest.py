"""One real tritonserver per test session, on free ports, stopped by its process id."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ich.serving.server import TritonServer, free_port


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    logs = tmp_path_factory.mktemp("triton")
    server = TritonServer(
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
        log_path=logs / "tritonserver.log",
        cache=logs,
    )
    server.start()
    yield server
    server.stop()
    assert server.process is not None and server.process.poll() is not None

"""An in-process app for request-level tests, and a real PostgreSQL on a free port of 127.0.0.1
stopped by its process id (the gateway process itself is a fixture of tests/conftest.py)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from ich.serving.server import TritonServer, free_port


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


def _postgres_bin(name: str) -> str:
    installed = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    found = shutil.which(name) or (str(installed[-1]) if installed else None)
    if found is None:
        pytest.fail(f"PostgreSQL's {name} is missing: `make test` installs the postgresql package")
    return found


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (as the postgres user when run as root)."""
    folder = Path(tempfile.mkdtemp(prefix="ich-pg-"))
    user: dict[str, object] = {}
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
        user = {"user": account.pw_uid, "group": account.pw_gid}
    data = folder / "data"
    subprocess.run(
        [_postgres_bin("initdb"), "-D", str(data), "-U", "ich", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        **user,
    )
    port = free_port()
    server = subprocess.Popen(
        [
            _postgres_bin("postgres"),
            "-D",
            str(data),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-k",
            str(folder),
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **user,
    )
    url = f"postgresql+psycopg://ich@127.0.0.1:{port}/postgres"
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(f"postgresql://ich@127.0.0.1:{port}/postgres").close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("PostgreSQL did not start")
            time.sleep(0.2)
    yield url
    server.send_signal(signal.SIGINT)  # fast shutdown
    server.wait(30)
    shutil.rmtree(folder, ignore_errors=True)

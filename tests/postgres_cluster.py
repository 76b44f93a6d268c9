"""A throwaway PostgreSQL cluster on 127.0.0.1 from Debian's binaries (as the postgres user
when run as root), stopped and started again on the same port and data by the fault drills."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from ich.serving.server import free_port


def _binary(name: str) -> str:
    installed = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    found = shutil.which(name) or (str(installed[-1]) if installed else None)
    if found is None:
        raise FileNotFoundError(
            f"PostgreSQL's {name} is missing: `make test` installs the postgresql package"
        )
    return found


class PostgresCluster:
    """``start()``, ``stop()`` (fast shutdown) and ``remove()``; ``url`` for SQLAlchemy."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="ich-pg-"))
        self.user: dict[str, Any] = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self.user = {"user": account.pw_uid, "group": account.pw_gid}
        self.data, self.port = self.folder / "data", free_port()
        subprocess.run(
            [_binary("initdb"), "-D", str(self.data), "-U", "ich", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            **self.user,
        )
        self.server: subprocess.Popen[bytes] | None = None
        self.url = f"postgresql+psycopg://ich@127.0.0.1:{self.port}/postgres"

    def start(self, timeout_s: float = 30) -> PostgresCluster:
        command = [_binary("postgres"), "-D", str(self.data), "-h", "127.0.0.1"]
        command += ["-p", str(self.port), "-k", str(self.folder), "-c", "fsync=off"]
        self.server = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **self.user
        )
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                psycopg.connect(f"postgresql://ich@127.0.0.1:{self.port}/postgres").close()
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.server.poll() is not None:
                    self.server.kill()
                    raise RuntimeError("PostgreSQL did not start") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGINT)  # fast shutdown: clients are disconnected
            self.server.wait(30)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

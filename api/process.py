"""The gateway as a process of its own (``ich serve --no-triton``) on a free port of 127.0.0.1:
what tests, benchmarks and fault drills start and stop by process id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from ich.serving.server import free_port


@dataclass
class GatewayProcess:
    url: str
    key: str
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes]

    def client(self, key: str | None = None, timeout: float = 120.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"X-API-Key": key or self.key}, timeout=timeout
        )

    def stop(self, sent: signal.Signals = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sent)
            self.process.wait(30)


def status_mb(pid: int, field: str) -> float:
    """A memory figure of ``/proc/<pid>/status`` (``VmRSS`` now, ``VmHWM`` peak) in MB."""
    line = next(
        line
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith(f"{field}:")
    )
    return int(line.split()[1]) / 1024


def start_gateway(data_dir: Path, triton_url: str, **env: str) -> GatewayProcess:
    """``ich serve --no-triton`` on a free port, as a process of its own; returns when live."""
    port = free_port()
    log = data_dir.parent / f"{data_dir.name}-gateway.log"
    environment = {**os.environ, "ICH_DATA_DIR": str(data_dir), "ICH_TRITON_URL": triton_url, **env}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ich", "serve", "--no-triton", "--port", str(port)],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                key = (data_dir / "local-api-key").read_text().strip()
                return GatewayProcess(url, key, data_dir, log, process)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError(f"gateway not live after 60 s: {log.read_text()[-2000:]}")

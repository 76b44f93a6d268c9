"""The tritonserver binary bundled in ``nvidia-pytriton``, run as a child process.

The bundled server has the python backend only, and its stub finds Python through PATH: the
backend folder is assembled next to the repository (the wheel stays untouched), this
interpreter's ``bin`` goes first on PATH and its ``lib`` on LD_LIBRARY_PATH, so the stubs
import this very environment (numpy<2, the project, torch).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from ich.errors import IchError

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
"""The repository of a source checkout (``ich export`` writes it)."""
PORTS = (8010, 8011, 8012)
"""Default HTTP, gRPC and metrics ports (8000 is the gateway's)."""
CPU_FLAGS = (
    "--disable-auto-complete-config",
    "--pinned-memory-pool-byte-size=0",
    "--cuda-memory-pool-byte-size=0:0",
    "--allow-gpu-metrics=false",
)
_PR_SET_PDEATHSIG = 1
SHM_BYTES = 64 << 20
"""Initial shared memory per python stub: a 32-plane study's blocks fit without regrowing."""


_CPU_NOISE = re.compile(r"CudaDriverHelper|unable to create stream|CUDA driver version")
"""Errors a CPU-only machine always logs, harmlessly."""


class ServerError(IchError):
    code = "triton-unavailable"
    title = "Inference server unavailable"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bundle() -> Path:
    try:
        import pytriton
    except ImportError as error:
        raise ServerError(
            "nvidia-pytriton is not installed: `pip install -e .[serve]` (or `make run`)"
        ) from error
    return Path(pytriton.__file__).parent / "tritonserver"


def backend_directory(cache: Path) -> Path:
    """``cache``/backends: the bundled python backend plus the stub for this Python."""
    bundle = _bundle()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = bundle / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServerError(f"the bundled Triton has no python stub for Python {version}")
    python = cache / "backends" / "python"
    python.mkdir(parents=True, exist_ok=True)
    # Links, not copies: the stub finds its libraries relative to where it really lies.
    for source in [*(bundle / "backends" / "python").glob("*.*"), stub]:
        target = python / source.name
        if target.is_symlink() and target.resolve() == source.resolve():
            continue
        target.unlink(missing_ok=True)
        target.symlink_to(source.resolve())
    return cache / "backends"


def _signal_group(group: int, sent: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sent)


def _stop_with_parent() -> None:
    """In the child: SIGTERM when the process that started the server dies, however it dies
    (Linux), so a killed test run or ``ich triton`` leaves no server behind."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class TritonServer:
    """A tritonserver on 127.0.0.1; ``start()`` returns once every model is ready."""

    repository: Path = REPOSITORY
    http_port: int = PORTS[0]
    grpc_port: int = PORTS[1]
    metrics_port: int = PORTS[2]
    host: str = "127.0.0.1"
    log_path: Path | None = None
    cache: Path = REPOSITORY.parent / ".cache" / "triton"
    """Backend folder and, unless ``log_path`` says otherwise, the server's log."""

    def __post_init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def on_free_ports(cls, logs: Path, repository: Path = REPOSITORY) -> TritonServer:
        """A server on free ports of 127.0.0.1 with its log and backends in ``logs``: what
        tests and drills start beside one another."""
        ports = (free_port(), free_port(), free_port())
        return cls(repository, *ports, log_path=logs / "tritonserver.log", cache=logs)

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def command(self) -> list[str]:
        return [
            str(_bundle() / "bin" / "tritonserver"),
            f"--model-repository={self.repository.resolve()}",
            f"--backend-directory={backend_directory(self.cache).resolve()}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            f"--backend-config=python,shm-default-byte-size={SHM_BYTES}",
            "--backend-config=python,shm-growth-byte-size=" + str(SHM_BYTES),
            "--exit-on-error=true",
            "--exit-timeout-secs=10",
            "--strict-readiness=true",
            *CPU_FLAGS,
        ]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
        lib = sysconfig.get_config_var("LIBDIR") or ""
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (lib, env.get("LD_LIBRARY_PATH")) if p)
        env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
        return env

    def start(self, timeout_s: float = 300.0) -> TritonServer:
        if not (self.repository / "ich_pipeline" / "config.pbtxt").is_file():
            raise ServerError(
                f"{self.repository} holds no ich_pipeline: write it with `ich export`"
            )
        self.cache.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_stop_with_parent,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"tritonserver exited with {self.process.returncode}: "
                                  f"{self.log_tail()}")  # fmt: skip
            if self.ready():
                return self
            time.sleep(0.5)
        self.stop()
        raise ServerError(f"tritonserver not ready after {timeout_s:.0f} s: {self.log_tail()}")

    def ready(self) -> bool:
        try:
            return (
                httpx.get(f"http://{self.http_url}/v2/health/ready", timeout=2).status_code == 200
            )
        except httpx.HTTPError:
            return False

    @property
    def log(self) -> Path:
        return self.log_path or self.cache / "tritonserver.log"

    def log_tail(self, lines: int = 12) -> str:
        """The server's error lines (or its last lines when it logged none)."""
        path = self.log
        text = path.read_text(errors="replace").splitlines() if path.is_file() else []
        errors = [line for line in text if line.startswith("E") and not _CPU_NOISE.search(line)]
        return "\n".join((errors or text)[-lines:])

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM to the server's process group (server and stubs), SIGKILL if it lingers;
        also after the server died alone, so no stub outlives it."""
        if self.process is None:
            return
        group = self.process.pid
        _signal_group(group, signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            _signal_group(group, signal.SIGKILL)
            self.process.wait()
        _signal_group(group, signal.SIGKILL)  # stubs still in the group, if any

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

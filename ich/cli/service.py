"""Service commands: export the Triton model repository, run Triton, the gateway and the
DICOM receiver, manage API keys. The only part of `ich` that imports `api` and `export`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from export.formats import Format, Target
from ich.cli.app import app, console, fail
from ich.errors import IchError

if TYPE_CHECKING:
    from sqlalchemy import Engine


@app.command("export")
def export_command(
    fmt: Annotated[Format, typer.Option("--format", help="Detector file format.")] = (
        Format.torchscript
    ),
    target: Annotated[
        Target, typer.Option(help="cpu (bundled Triton) or gpu (NGC image).")
    ] = Target.cpu,
    model: Annotated[
        Path | None, typer.Option(help="Model file (default: the shipped CPU model).")
    ] = None,
    repository: Annotated[
        Path | None, typer.Option(help="Model repository to write (default: model_repository).")
    ] = None,
    fp16: Annotated[bool, typer.Option(help="TensorRT: build an FP16 engine.")] = False,
    check: Annotated[
        bool, typer.Option(help="Check ONNX/TensorRT outputs against PyTorch.")
    ] = True,
) -> None:
    """Export the detector and write the Triton model repository around it."""
    from export.repository import export_repository
    from ich.model.checkpoint import DEFAULT_MODEL
    from ich.serving.server import REPOSITORY

    try:
        done = export_repository(
            model or DEFAULT_MODEL, repository or REPOSITORY, fmt, target, check, fp16
        )
    except IchError as exc:
        raise fail(exc) from exc
    for parity in done.parity:
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in parity.max_abs_diff.items())
        agree = "agree" if parity.detections_agree else "DISAGREE"
        console.print(f"{parity.runtime}: {parity.detections} detections {agree}; "
                      f"largest differences {diffs}")  # fmt: skip
    console.print(f"wrote {done.weights} and the configs of {done.repository}")


def _interrupt(*_: object) -> None:
    """Ctrl-C, SIGTERM and a closed terminal stop ``ich triton`` and its server (also where
    SIGINT was inherited ignored, as in background jobs)."""
    raise KeyboardInterrupt


@app.command("triton")
def triton_command(
    repository: Annotated[
        Path | None, typer.Option(help="Model repository (default: model_repository).")
    ] = None,
    http_port: Annotated[int, typer.Option(help="HTTP port on 127.0.0.1.")] = 8010,
    grpc_port: Annotated[int, typer.Option(help="gRPC port on 127.0.0.1.")] = 8011,
    metrics_port: Annotated[int, typer.Option(help="Metrics port on 127.0.0.1.")] = 8012,
) -> None:
    """Run the bundled Triton server with the model repository until interrupted."""
    import signal
    import time

    from ich.serving.server import REPOSITORY, ServerError, TritonServer

    server = TritonServer(repository or REPOSITORY, http_port, grpc_port, metrics_port)
    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _interrupt)
    try:
        server.start()
        console.print(f"Triton ready: HTTP {server.http_url}, gRPC {server.grpc_url} "
                      f"(pid {server.process.pid}, log {server.log}); Ctrl-C stops it")  # fmt: skip
        console.print(f"Analyse a study through it: ich analyze PATH --server {server.grpc_url}")
        while server.process.poll() is None:
            time.sleep(1)
        raise fail(ServerError(f"tritonserver exited: {server.log_tail()}"))
    except KeyboardInterrupt:
        console.print("stopping Triton")
    except IchError as exc:
        raise fail(exc) from exc
    finally:
        server.stop()


RECEIVE_PORT = 11112
"""The registered DICOM port (104 needs root)."""
DicomPort = Annotated[
    int | None,
    typer.Option(help="Also receive studies by DICOM C-STORE on this port (ICH_DICOM_PORT)."),
]
AeTitle = Annotated[str | None, typer.Option(help="The receiver's AE title (ICH_DICOM_AE_TITLE).")]
CallingAes = Annotated[
    list[str] | None,
    typer.Option("--allow", help="A calling AE title to accept (repeat; default any)."),
]


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address the gateway binds.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Gateway port.")] = 8000,
    triton: Annotated[
        bool, typer.Option(help="Start Triton here (else use ICH_TRITON_URL).")
    ] = True,
    repository: Annotated[Path | None, typer.Option(help="Model repository for Triton.")] = None,
    example: Annotated[
        Path | None, typer.Option(help="Study folder named in the examples.")
    ] = None,
    dicom_port: DicomPort = None,
    ae_title: AeTitle = None,
    allow: CallingAes = None,
) -> None:
    """Run Triton, the REST gateway and its database (SQLite, or DATABASE_URL) until Ctrl-C;
    with --dicom-port, the DICOM receiver too."""
    _serve(host, port, triton, repository, example, dicom_port, ae_title, allow)


@app.command("receive")
def receive_command(
    dicom_port: Annotated[
        int | None, typer.Option(help="C-STORE port (default ICH_DICOM_PORT, else 11112).")
    ] = None,
    ae_title: AeTitle = None,
    allow: CallingAes = None,
    host: Annotated[str, typer.Option(help="Address the gateway's REST API binds.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="REST port: worklist and results.")] = 8000,
    triton: Annotated[
        bool, typer.Option(help="Start Triton here (else use ICH_TRITON_URL).")
    ] = True,
) -> None:
    """Receive studies from PACS (DICOM C-STORE on 127.0.0.1 unless ICH_DICOM_HOST), analyse
    each complete study unattended; results, worklist and SEG/SR over the REST API."""
    import os

    port_default = int(os.environ.get("ICH_DICOM_PORT") or RECEIVE_PORT)
    _serve(host, port, triton, None, None, dicom_port or port_default, ae_title, allow)


def _serve(
    host: str,
    port: int,
    triton: bool,
    repository: Path | None,
    example: Path | None,
    dicom_port: int | None,
    ae_title: str | None,
    allow: list[str] | None,
) -> None:
    import signal

    from api.serve import serve
    from api.settings import Settings

    overrides: dict[str, object] = {}
    if dicom_port is not None:
        overrides["dicom_port"] = dicom_port
    if ae_title:
        overrides["dicom_ae_title"] = ae_title
    if allow:
        overrides["dicom_allowed_aes"] = tuple(allow)
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _interrupt)
    try:
        serve(Settings.from_env(**overrides), host, port, triton, repository, example)
    except KeyboardInterrupt:
        console.print("stopped")
    except IchError as exc:
        raise fail(exc) from exc


keys_app = typer.Typer(help="API keys of the gateway's clients (one per client).")
app.add_typer(keys_app, name="keys")


def _engine() -> Engine:
    from api.db import connect
    from api.settings import Settings

    return connect(Settings.from_env().url)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who the key is for, e.g. the integration.")],
    scope: Annotated[
        list[str] | None,
        typer.Option(help="analyses:write and/or analyses:read (default both)."),
    ] = None,
) -> None:
    """Create a client and print its API key and webhook secret (shown only once)."""
    from api.keys import SCOPES, create_key

    try:
        issued = create_key(_engine(), name, tuple(scope or SCOPES))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    console.print(f"client   {issued.client.id} ({name}), scopes {' '.join(issued.client.scopes)}")
    console.print(f"api key  {issued.key}")
    console.print(f"webhook  {issued.client.webhook_secret}  (verifies ICH-Signature)")


@keys_app.command("list")
def keys_list() -> None:
    """Every client: key prefix, scopes, created, revoked."""
    from api.keys import list_keys

    table = Table("client", "name", "prefix", "scopes", "created", "revoked")
    columns = ("client_id", "name", "prefix", "scopes", "created", "revoked")
    for row in list_keys(_engine()):
        table.add_row(*(str(row[k] or "") for k in columns))
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="Key prefix (the part after ich_) or client id.")],
) -> None:
    """Revoke a client's key: its requests are refused from now on."""
    from api.keys import revoke_key

    try:
        console.print(f"revoked client {revoke_key(_engine(), key)}")
    except IchError as exc:
        raise fail(exc) from exc

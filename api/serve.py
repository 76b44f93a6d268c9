"""``ich serve``: Triton, the gateway and its database on 127.0.0.1, with the shipped model.

The database is SQLite in the data folder unless ``DATABASE_URL`` names PostgreSQL. A local API
key is made on the first run and kept (mode 600) in the data folder, so the printed examples
work as they are.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import uvicorn

from api.app import create_app
from api.db import connect
from api.keys import create_key, find_key
from api.logs import configure
from api.settings import Settings

KEY_FILE = "local-api-key"


def local_key(settings: Settings) -> str:
    """The key of the local client, made and saved on first use."""
    path = settings.data_dir / KEY_FILE
    engine = connect(settings.url)
    try:
        if path.is_file():
            key = path.read_text().strip()
            if find_key(engine, key) is not None:
                return key
        key = create_key(engine, "local").key
    finally:
        engine.dispose()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(key + "\n")
    return key


def receiving(settings: Settings, base: str, key: str) -> str:
    """How to send studies to the DICOM receiver and read the worklist."""
    allowed = settings.dicom_allowed_aes
    host, port, title = settings.dicom_host, settings.dicom_port, settings.dicom_ae_title
    callers = ", ".join(allowed) or "any"
    return f"""DICOM receiver {title} on {host}:{port} (calling AE titles: {callers};
  a study is analysed {settings.dicom_quiet_s:g} s after its last instance, for the client
  {settings.dicom_client!r}). Send one with pynetdicom's storescu, then read the worklist:
  {Path(sys.executable).parent}/python -m pynetdicom storescu {host} {port} STUDY_DIR -r \\
      -aet {allowed[0] if allowed else "CT_SCANNER"} -aec {title}
  curl -s -H "X-API-Key: {key}" {base}/v1/worklist
"""


def usage(base: str, key: str, study: str) -> str:
    bin_dir = Path(sys.executable).parent
    return f"""
Gateway at {base}  (OpenAPI: {base}/docs; health {base}/healthz, {base}/readyz)
API key of the local client: {key}  (more: ich keys create NAME)

Analyse a study (a zip of its .dcm files, or the files themselves):
  python3 -m zipfile -c /tmp/study.zip {study}/
  curl -s -H "X-API-Key: {key}" -H "Content-Type: application/zip" \\
       --data-binary @/tmp/study.zip {base}/v1/analyses | python3 -m json.tool | head -40
Or send files as multipart, asynchronously, then poll the Location:
  curl -si -H "X-API-Key: {key}" -H "Prefer: respond-async" \\
       $(for f in {study}/*.dcm; do printf -- '-F files=@%s ' "$f"; done) {base}/v1/analyses
  curl -s -H "X-API-Key: {key}" {base}/v1/analyses/ID
  curl -s -H "X-API-Key: {key}" -o seg.dcm {base}/v1/analyses/ID/seg
See it slice by slice in a browser: open the url this answers (valid for minutes):
  curl -s -X POST -H "X-API-Key: {key}" {base}/v1/analyses/ID/viewer
With the client SDK (clients/python) and its command line:
  {bin_dir}/ich-client analyze {study} --url {base} --key {key}
  {bin_dir}/ich-client viewer ID --url {base} --key {key}
  from ich_client import Client
  with Client("{base}", api_key="{key}") as ich:
      print(ich.analyze("{study}").result.classes)
Ctrl-C stops the gateway and Triton.
"""


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    triton: bool = True,
    repository: Path | None = None,
    study: Path | None = None,
) -> None:
    """Run until interrupted; Triton (when ``triton``) is stopped on the way out."""
    from ich.serving.server import PORTS, REPOSITORY, TritonServer

    configure(os.environ.get("ICH_LOG_LEVEL", "INFO"))
    server = None
    if triton:
        server = TritonServer(repository or REPOSITORY, *PORTS).start()
        settings = settings.model_copy(
            update={"triton_url": server.grpc_url, "triton_protocol": "grpc"}
        )
    try:
        key = local_key(settings)
        print(usage(f"http://{host}:{port}", key, str(study or "STUDY_DIR")), flush=True)
        if settings.dicom_port is not None:
            print(receiving(settings, f"http://{host}:{port}", key), flush=True)
        uvicorn.run(create_app(settings), host=host, port=port, log_config=None,
                    timeout_graceful_shutdown=10)  # fmt: skip
    finally:
        if server is not None:
            server.stop()

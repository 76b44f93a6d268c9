"""The SDK against the session's real gateway and Triton: clients holding its local key, the
synthetic studies, a second key whose webhook secret the tests know, and a local HTTP endpoint
that receives webhooks and FHIR transactions."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from ich_client import Client

from api.db import connect
from api.keys import IssuedKey, create_key
from api.process import GatewayProcess


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[Client]:
    with Client(gateway.url, api_key=gateway.key, timeout=120) as sdk:
        yield sdk


@pytest.fixture(scope="session")
def study(small_synth: Path) -> Path:
    """A folder of one synthetic study with blood."""
    return sorted(small_synth.glob("case_*"))[0] / "dicom"


@pytest.fixture(scope="session")
def issued(gateway: GatewayProcess) -> IssuedKey:
    """A second client of the gateway, with its webhook secret."""
    return create_key(connect(f"sqlite:///{gateway.data_dir.resolve() / 'ich.db'}"), "sdk")


class Receiver(BaseHTTPRequestHandler):
    """A webhook or FHIR endpoint: keeps what it is sent, answers ``reply``."""

    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    reply: ClassVar[tuple[int, dict[str, Any]]] = (200, {})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        status, document = self.reply
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("Receiver", (Receiver,), {"received": [], "reply": (200, {})})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", handler
    server.shutdown()

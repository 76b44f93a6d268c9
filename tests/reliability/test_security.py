"""Who gets in and what leaks: missing and revoked keys, other clients' analyses, oversized
headers, slow uploads and slow headers, and no patient name or ID from the uploaded DICOM in
the logs, the error answers or the metrics."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest
from reliability_support import (  # type: ignore[import-not-found]
    CANARY_ID,
    CANARY_NAME,
    DRILL_ENV,
    PROBLEM,
    multipart,
    record,
    tiny_study,
)

from api.db import connect
from api.keys import create_key, revoke_key
from api.process import GatewayProcess, start_gateway
from ich.serving.server import TritonServer

IDLE_S = 3
"""The upload idle timeout of this module's gateway."""


@pytest.fixture(scope="module")
def guarded(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> GatewayProcess:
    data = tmp_path_factory.mktemp("guarded") / "data"
    running = start_gateway(
        data,
        triton.grpc_url,
        **{**DRILL_ENV, "ICH_LOG_LEVEL": "DEBUG"},
        ICH_UPLOAD_IDLE_TIMEOUT_S=str(IDLE_S),
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def mine(guarded: GatewayProcess) -> str:
    with guarded.client() as client:
        answer = client.post("/v1/analyses", files=multipart(tiny_study()[1]))
    assert answer.status_code == 200
    return str(answer.json()["id"])


def _routes(analysis_id: str) -> list[tuple[str, str]]:
    base = f"/v1/analyses/{analysis_id}"
    return [
        ("GET", base),
        ("DELETE", base),
        ("GET", f"{base}/seg"),
        ("GET", f"{base}/sr"),
        ("GET", f"{base}/overlays/0.png"),
        ("POST", f"{base}/viewer"),
        ("GET", f"/viewer/{analysis_id}/planes/0"),
    ]


def test_missing_forged_and_revoked_keys_are_refused(guarded: GatewayProcess, mine: str) -> None:
    engine = connect(f"sqlite:///{guarded.data_dir.resolve() / 'ich.db'}")
    revoked = create_key(engine, "leaver")
    revoke_key(engine, revoked.client.id)
    checked = 0
    for key, code in (
        (None, "unauthorized"),
        ("ich_0_forged", "unknown-key"),
        (revoked.key, "unknown-key"),
    ):
        headers = {"X-API-Key": key} if key else {}
        for method, path in [
            *_routes(mine),
            ("GET", "/v1/analyses"),
            ("GET", "/v1/worklist"),
            ("POST", "/v1/analyses"),
        ]:
            answer = httpx.request(method, guarded.url + path, headers=headers, timeout=30)
            assert answer.status_code == 401, (method, path, key)
            assert answer.headers["content-type"] == PROBLEM and answer.json()["type"].endswith(
                code
            )
            checked += 1
    record("security", refused_without_valid_key=f"{checked} of {checked} requests 401")


def test_another_clients_analyses_do_not_exist_for_you(guarded: GatewayProcess, mine: str) -> None:
    engine = connect(f"sqlite:///{guarded.data_dir.resolve() / 'ich.db'}")
    stranger = create_key(engine, "stranger")
    with guarded.client(stranger.key) as client:
        for method, path in _routes(mine):
            answer = client.request(method, path)
            assert answer.status_code == 404 and answer.headers["content-type"] == PROBLEM, path
        assert mine not in client.get("/v1/analyses").text
        assert mine not in client.get("/v1/worklist").text
    with guarded.client() as owner:
        assert owner.get(f"/v1/analyses/{mine}").json()["status"] == "done"  # still there
    record("security", other_clients_analysis=f"{len(_routes(mine))} routes 404, lists omit it")


def test_oversized_headers_are_refused_and_the_gateway_stays_up(guarded: GatewayProcess) -> None:
    results = []
    for headers in ({"X-Big": "a" * 200_000}, {f"X-H{n}": "v" * 100 for n in range(2000)}):
        try:
            answer = httpx.get(f"{guarded.url}/healthz", headers=headers, timeout=10)
            results.append(answer.status_code)
            assert 400 <= answer.status_code < 500
        except (httpx.RemoteProtocolError, httpx.ReadError):  # closed by the server: refused
            results.append("closed")
    assert httpx.get(f"{guarded.url}/healthz", timeout=5).status_code == 200
    record("security", oversized_headers=f"refused ({', '.join(map(str, results))})")


def test_a_stalled_upload_is_dropped_and_keeps_nothing(guarded: GatewayProcess) -> None:
    host, port = guarded.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=IDLE_S + 15) as stalled:
        stalled.sendall(
            b"POST /v1/analyses HTTP/1.1\r\nHost: x\r\nX-API-Key: " + guarded.key.encode()
            + b"\r\nContent-Type: application/zip\r\nContent-Length: 1000000\r\n\r\n"
            + b"PK" * 500
        )  # fmt: skip
        started = time.monotonic()
        reply = stalled.recv(65536).decode("latin-1")
        waited = time.monotonic() - started
        while "}" not in reply and (more := stalled.recv(65536)):  # the problem's body
            reply += more.decode("latin-1")
    assert reply.startswith("HTTP/1.1 408"), reply[:200]
    assert "request-timeout" in reply and IDLE_S - 1 < waited < IDLE_S + 10
    spool = guarded.data_dir / "spool"
    assert not [p for p in spool.iterdir() if p.is_dir() and not _known(guarded, p.name)]
    record(
        "security", stalled_upload=f"408 after {waited:.1f} s (idle limit {IDLE_S} s), spool clean"
    )


def _known(gateway: GatewayProcess, name: str) -> bool:
    with gateway.client() as client:
        return client.get(f"/v1/analyses/{name}").status_code == 200


def test_slow_headers_do_not_starve_other_clients(guarded: GatewayProcess) -> None:
    host, port = guarded.url.removeprefix("http://").split(":")
    slow = []
    for _ in range(64):
        connection = socket.create_connection((host, int(port)), timeout=5)
        connection.sendall(b"GET /v1/analyses HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(connection)
    try:
        started = time.monotonic()
        for _ in range(10):
            assert httpx.get(f"{guarded.url}/healthz", timeout=5).status_code == 200
        served_s = (time.monotonic() - started) / 10
    finally:
        for connection in slow:
            connection.close()
    assert served_s < 1.0
    record(
        "security",
        slow_headers=f"64 connections held open mid-header; /healthz answered in "
        f"{served_s * 1000:.0f} ms",
    )


def test_no_patient_name_or_id_leaks_into_logs_errors_or_metrics(
    guarded: GatewayProcess, triton: TritonServer, tmp_path: Path
) -> None:
    seen: list[str] = []
    with guarded.client() as client:
        _, files = tiny_study()
        seen.append(client.post("/v1/analyses", files=multipart(files)).text)
        seen.append(client.post("/v1/analyses", files=multipart(files[:2])).text)  # too few
        truncated = [f[: len(f) // 2] for f in files]
        seen.append(client.post("/v1/analyses", files=multipart(truncated)).text)
        seen.append(
            client.post(
                "/v1/analyses",
                content=files[0][:300],
                headers={"Content-Type": "application/dicom"},
            ).text
        )
        seen.append(client.get("/v1/analyses?limit=50").text)
        seen.append(client.get("/v1/worklist").text)
        seen.append(client.get("/metrics").text)
    assert any("too-few-slices" in s for s in seen)
    places = {
        "answers": "\n".join(seen),
        "gateway log": guarded.log.read_text(errors="replace"),
        "triton log": triton.log.read_text(errors="replace"),
    }
    canaries = {CANARY_NAME, CANARY_ID, CANARY_NAME.replace("^", " "), "Canary", "CANARY"}
    for where, text in places.items():
        for canary in canaries:
            assert canary.lower() not in text.lower(), f"{canary!r} appears in the {where}"
    record("security", patient_data_in_logs_errors_metrics=f"none ({', '.join(places)} searched)")

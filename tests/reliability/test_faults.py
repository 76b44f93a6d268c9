"""Faults in the middle of work, with real processes: Triton killed and restarted, the gateway
killed with analyses queued and restarted, the spool disk full, the database locked (SQLite)
and unreachable (PostgreSQL stopped, then started again). After each, every accepted analysis
is done (with its own study's result) or failed with a recorded reason: nothing is lost."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from postgres_cluster import PostgresCluster  # type: ignore[import-not-found]
from reliability_support import (  # type: ignore[import-not-found]
    DRILL_ENV,
    accounted,
    as_zip,
    multipart,
    record,
    settle,
    tiny_study,
)

from api.process import start_gateway
from ich.serving.server import TritonServer


@pytest.fixture(scope="module")
def own_triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """A Triton of this module's own: the drills kill it."""
    server = TritonServer.on_free_ports(tmp_path_factory.mktemp("fault-triton")).start()
    yield server
    server.stop()


def _submit(client: httpx.Client, count: int) -> dict[str, str]:
    """``count`` new studies queued at once; analysis id -> the study's UID."""
    submitted = {}
    for _ in range(count):
        study_uid, files = tiny_study()
        answer = client.post(
            "/v1/analyses", files=multipart(files), headers={"Prefer": "respond-async"}
        )
        assert answer.status_code == 202, answer.text
        submitted[answer.json()["id"]] = study_uid
    return submitted


def test_killing_triton_mid_load_loses_nothing(own_triton: TritonServer, tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path / "data", own_triton.grpc_url, **DRILL_ENV)
    try:
        with gateway.client() as client:
            studies = _submit(client, 12)
            while not any(
                client.get(f"/v1/analyses/{i}").json()["status"] == "done" for i in studies
            ):
                time.sleep(0.1)
            assert own_triton.process is not None
            os.killpg(own_triton.process.pid, signal.SIGKILL)
            own_triton.process.wait()
            killed = time.monotonic()
            refused = client.post("/v1/analyses", files=multipart(tiny_study()[1]))
            assert refused.status_code == 503 and refused.headers["retry-after"]
            assert refused.json()["type"].endswith("/triton-unavailable")
            own_triton.start()
            down_s = time.monotonic() - killed
            counts = accounted(settle(client, list(studies), 240), studies)
    finally:
        gateway.stop()
    record("faults", triton_killed={**counts, "triton_down_s": round(down_s, 1)})
    assert counts["done"] == counts["accepted"], counts  # an outage costs no analysis


def test_killing_the_gateway_with_work_queued_loses_nothing(
    own_triton: TritonServer, tmp_path: Path
) -> None:
    env = {**DRILL_ENV, "ICH_WORKERS": "1", "ICH_REPLICA_ID": "drill"}
    gateway = start_gateway(tmp_path / "data", own_triton.grpc_url, **env)
    with gateway.client() as client:
        studies = _submit(client, 10)
    gateway.stop(signal.SIGKILL)
    restarted = start_gateway(tmp_path / "data", own_triton.grpc_url, **env)
    try:
        with restarted.client() as client:
            counts = accounted(settle(client, list(studies), 240), studies)
            outputs = {client.get(f"/v1/analyses/{i}").json()["outputs"] for i in studies}
    finally:
        restarted.stop()
    record("faults", gateway_killed=counts)
    assert counts["done"] == counts["accepted"] and outputs <= {"ready", "pending"}, counts


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MB tmpfs (root only: CI and this machine run as root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_spool_disk_refuses_uploads_and_loses_nothing(
    own_triton: TritonServer, small_disk: Path
) -> None:
    env = {**DRILL_ENV, "ICH_MIN_FREE_BYTES": str(8 << 20)}
    gateway = start_gateway(small_disk / "data", own_triton.grpc_url, **env)
    filler = small_disk / "filler"
    try:
        with gateway.client() as client:
            studies = _submit(client, 3)
            free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
            filler.write_bytes(b"\0" * (free - (4 << 20)))  # 4 MB left: below the 8 MB kept
            refused = client.post("/v1/analyses", files=multipart(tiny_study()[1]))
            assert refused.status_code == 503 and refused.headers["retry-after"]
            assert refused.json()["type"].endswith("/storage-full")
            filler.unlink()
            free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
            filler.write_bytes(b"\0" * (free - (10 << 20)))  # admitted, then the disk fills
            study_uid, files = tiny_study()
            big = as_zip(files * 40 + [os.urandom(12 << 20)])
            mid = client.post(
                "/v1/analyses", content=big, headers={"Content-Type": "application/zip"}
            )
            assert mid.status_code in (413, 503), mid.text
            spool = list((small_disk / "data" / "spool").iterdir())
            filler.unlink()
            counts = accounted(settle(client, list(studies), 240), studies)
            after = client.post("/v1/analyses", files=multipart(files))
            assert after.status_code == 200 and after.json()["result"]["study_uid"] == study_uid
    finally:
        gateway.stop()
    assert not [p for p in spool if p.name not in studies], f"partial upload kept: {spool}"
    record("faults", disk_full={**counts, "refused": [refused.status_code, mid.status_code]})


def test_a_locked_database_answers_503_and_loses_nothing(
    own_triton: TritonServer, tmp_path: Path
) -> None:
    gateway = start_gateway(tmp_path / "data", own_triton.grpc_url, **DRILL_ENV)
    database = tmp_path / "data" / "ich.db"
    answers: list[int] = []
    slowest = [0.0]
    try:
        with gateway.client() as client:
            studies = _submit(client, 4)
            lock = sqlite3.connect(
                database, timeout=30, isolation_level=None, check_same_thread=False
            )
            lock.execute("BEGIN EXCLUSIVE")
            released = threading.Timer(14, lock.execute, ("COMMIT",))
            released.start()
            locked_until = time.monotonic() + 14
            while time.monotonic() < locked_until:
                started = time.monotonic()
                answer = client.post("/v1/analyses", files=multipart(tiny_study()[1]))
                health = client.get("/healthz", timeout=2)
                slowest[0] = max(slowest[0], time.monotonic() - started)
                answers.append(answer.status_code)
                assert health.status_code == 200  # the event loop is never the one waiting
                if answer.status_code == 503:
                    assert answer.json()["type"].endswith("/database-unavailable")
                    assert answer.headers["retry-after"]
                else:
                    assert answer.status_code == 200, answer.text
                    studies[answer.json()["id"]] = answer.json()["result"]["study_uid"]
            released.join()
            lock.close()
            counts = accounted(settle(client, list(studies), 240), studies)
    finally:
        gateway.stop()
    assert 503 in answers and 500 not in answers
    record(
        "faults",
        database_locked={
            **counts,
            "answers_while_locked": {str(s): answers.count(s) for s in sorted(set(answers))},
            "slowest_answer_s": round(slowest[0], 1),
        },
    )
    assert counts["done"] == counts["accepted"], counts


def test_an_unreachable_database_answers_503_and_loses_nothing(
    own_triton: TritonServer, tmp_path: Path
) -> None:
    cluster = PostgresCluster().start()
    env = {**DRILL_ENV, "DATABASE_URL": cluster.url}
    gateway = start_gateway(tmp_path / "data", own_triton.grpc_url, **env)
    answers: list[int] = []
    try:
        with gateway.client() as client:
            studies = _submit(client, 6)
            cluster.stop()
            down = time.monotonic()
            while time.monotonic() - down < 8:
                started = time.monotonic()
                answer = client.post("/v1/analyses", files=multipart(tiny_study()[1]))
                assert time.monotonic() - started < 15, "a request waited on the dead database"
                assert client.get("/healthz", timeout=2).status_code == 200
                answers.append(answer.status_code)
                assert answer.status_code == 503, answer.text
                assert answer.json()["type"].endswith("/database-unavailable")
                assert answer.headers["retry-after"]
            cluster.start()
            counts = accounted(settle(client, list(studies), 240), studies)
            after = client.post("/v1/analyses", files=multipart(tiny_study()[1]))
            assert after.status_code == 200, after.text
    finally:
        gateway.stop()
        cluster.remove()
    record("faults", database_down={**counts, "answers_while_down": f"{len(answers)} x 503"})
    assert counts["done"] == counts["accepted"], counts

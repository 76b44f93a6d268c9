"""Two gateway replicas on one database and one data volume: neither runs the other's work
while both beat; when one is killed, the other finishes what it had accepted."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from api.db import connect
from api.jobs import JobStore
from api.process import start_gateway
from ich.serving.server import TritonServer

LEASE_S = 3


def _submit(client: httpx.Client, folder: Path) -> str:
    files = [("files", (p.name, p.read_bytes())) for p in sorted(folder.glob("*.dcm"))]
    answer = client.post("/v1/analyses", files=files, headers={"Prefer": "respond-async"})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def _settled(client: httpx.Client, ids: list[str], timeout_s: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [client.get(f"/v1/analyses/{i}").json() for i in ids]
        if all(f["status"] == "done" and f["outputs"] == "ready" for f in found):
            return found
        time.sleep(0.3)
    raise AssertionError(f"not finished: {[(f['id'], f['status']) for f in found]}")


def test_a_killed_replicas_work_is_finished_by_the_other(
    triton: TritonServer, small_synth: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "data"
    studies = [p / "dicom" for p in sorted(small_synth.glob("case_*"))]
    replica = {"ICH_LEASE_S": str(LEASE_S), "ICH_WORKERS": "1", "ICH_RATE_LIMIT_PER_MINUTE": "6000"}
    a = start_gateway(shared, triton.grpc_url, ICH_REPLICA_ID="a", **replica)
    b = start_gateway(shared, triton.grpc_url, ICH_REPLICA_ID="b", **replica)
    store = JobStore(connect(f"sqlite:///{(shared / 'ich.db').resolve()}"))
    try:
        with a.client() as to_a:
            first = [_submit(to_a, s) for s in studies[:2]]
            time.sleep(LEASE_S + 1)  # b beats and looks for orphans meanwhile
            assert {store.get(i).owner for i in first} == {"a"}
            _settled(to_a, first)
            later = [_submit(to_a, s) for s in studies]
        a.stop(signal.SIGKILL)
        left = [i for i in later if store.get(i).status in ("queued", "running")]
        assert left, "a finished everything before it was killed: nothing to take over"
        with b.client() as to_b:  # b serves all of them: one database, one volume
            finished = _settled(to_b, first + later)
        assert len({f["result"]["series_uid"] for f in finished}) == len(studies)
        assert {store.get(i).owner for i in left} == {"b"}
        assert {store.get(i).owner for i in first} == {"a"}
    finally:
        a.stop()
        b.stop()
    assert "took over" in b.log.read_text()


def test_the_start_sweep_spares_young_files_while_other_replicas_run(
    app_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    spool = data / "spool"
    young, old = spool / "stow-receiving-elsewhere", spool / "abandoned"
    for folder in (young, old):
        folder.mkdir(parents=True)
        (folder / "1.dcm").write_bytes(b"x")
    hour_ago = time.time() - 2 * 3600
    for path in (old, old / "1.dcm"):
        os.utime(path, (hour_ago, hour_ago))
    other = JobStore(connect(f"sqlite:///{(data / 'ich.db').resolve()}"), "other")
    other.heartbeat(30)
    app_client(data_dir=data, replica_id="this")
    assert young.is_dir() and not old.exists()

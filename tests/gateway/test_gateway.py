"""The real gateway process against the real Triton and SQLite: results, formats, jobs."""

from __future__ import annotations

import io
import json
import signal
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import highdicom
import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image

from api.process import GatewayProcess, start_gateway
from api.webhooks import SIGNATURE_HEADER, verify
from ich.schema import ExamResult
from ich.serving.client import PipelineClient, study_files
from ich.serving.server import TritonServer


def _parts(folder: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("files", (p.name, p.read_bytes(), "application/dicom"))
        for p in sorted(folder.glob("*.dcm"))
    ]


def _zip(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.glob("*.dcm")):
            archive.write(path, f"study/{path.name}")
    return buffer.getvalue()


def _case(small_synth: Path, n: int = 0) -> Path:
    return sorted(small_synth.glob("case_*"))[n] / "dicom"


def _wait_outputs(client: httpx.Client, location: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.get(location).json()
        if body["status"] == "failed" or (
            body["status"] == "done" and body["outputs"] != "pending"
        ):
            return body
        time.sleep(0.2)
    raise AssertionError(f"{location} did not finish: {body}")


def test_a_synchronous_upload_returns_what_triton_returns(
    gateway: GatewayProcess, triton: TritonServer, small_synth: Path
) -> None:
    folder = _case(small_synth)
    with gateway.client() as client:
        answer = client.post("/v1/analyses", files=_parts(folder))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "done" and answer.headers["location"] == f"/v1/analyses/{body['id']}"
    direct, _ = PipelineClient(triton.grpc_url).analyze(study_files(folder))
    served = ExamResult.model_validate(body["result"])
    assert served == direct
    assert served.any_ich_flagged and served.detections and served.hemorrhages
    first = served.detections[0]
    assert first.sop_instance_uid and len(first.box_lps_mm) == 6
    assert body["model"]["name"] == "ich-cpu-default" and len(body["model"]["sha256"]) == 64
    timings = body["timings"]
    assert 0 < timings["inference_s"] <= timings["total_s"]
    assert answer.headers["x-request-id"]


def test_async_zip_upload_then_seg_sr_and_overlays(
    gateway: GatewayProcess, small_synth: Path
) -> None:
    folder = _case(small_synth, 1)
    with gateway.client() as client:
        answer = client.post(
            "/v1/analyses",
            content=_zip(folder),
            headers={"Content-Type": "application/zip", "Prefer": "respond-async"},
        )
        assert answer.status_code == 202, answer.text
        assert answer.headers["preference-applied"] == "respond-async"
        location = answer.headers["location"]
        body = _wait_outputs(client, location)
        assert body["status"] == "done" and body["outputs"] == "ready", body
        result = ExamResult.model_validate(body["result"])
        seg = pydicom.dcmread(io.BytesIO(client.get(f"{location}/seg").content))
        sr = pydicom.dcmread(io.BytesIO(client.get(f"{location}/sr").content))
        plane = result.detections[0].index
        png = client.get(f"{location}/overlays/{plane}.png")
        missing = client.get(f"{location}/overlays/9999.png")
    sources = {
        pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in folder.glob("*.dcm")
    }
    segmentation = highdicom.seg.Segmentation.from_dataset(seg)
    assert {
        s.ReferencedSOPInstanceUID
        for s in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    } <= sources
    assert seg.StudyInstanceUID == result.study_uid and len(segmentation.SegmentSequence) == 3
    assert "unverified" in (seg.SeriesDescription + seg.ContentDescription).lower()
    report = highdicom.sr.Comprehensive3DSR.from_dataset(sr)
    assert report.StudyInstanceUID == result.study_uid
    image = np.asarray(Image.open(io.BytesIO(png.content)).convert("RGB"))
    assert png.headers["content-type"] == "image/png" and image.shape[2] == 3
    assert missing.status_code == 404 and missing.json()["type"] == "/v1/problems/not-found"
    # Retention: the uploaded DICOM is gone once the DICOM objects are made.
    assert not (gateway.data_dir / "spool" / body["id"]).exists()


def test_bad_studies_fail_with_their_problem_type(
    gateway: GatewayProcess, small_synth: Path
) -> None:
    one = sorted(_case(small_synth).glob("*.dcm"))[0]
    with gateway.client() as client:
        few = client.post(
            "/v1/analyses", content=one.read_bytes(), headers={"Content-Type": "application/dicom"}
        )
        text = client.post("/v1/analyses", files=[("files", ("a.txt", b"hello", "text/plain"))])
    assert few.status_code == 422 and few.headers["content-type"] == "application/problem+json"
    assert few.json()["type"] == "/v1/problems/too-few-slices", few.json()
    assert few.json()["instance"] == f"/v1/analyses/{few.json()['analysis_id']}"
    assert text.status_code == 422 and text.json()["type"] == "/v1/problems/no-dicom"
    assert "Traceback" not in few.text + text.text


def test_idempotent_retries_and_client_isolation(
    gateway: GatewayProcess, small_synth: Path
) -> None:
    folder = _case(small_synth, 2)
    headers = {"Idempotency-Key": "visit-42", "Prefer": "respond-async"}
    with gateway.client() as client:
        first = client.post("/v1/analyses", files=_parts(folder), headers=headers)
        retry = client.post("/v1/analyses", files=_parts(folder), headers=headers)
        other = client.post("/v1/analyses", files=_parts(_case(small_synth, 3)), headers=headers)
        assert first.status_code == retry.status_code == 202
        assert first.json()["id"] == retry.json()["id"]
        assert other.status_code == 409 and other.json()["type"].endswith("idempotency-conflict")
        listed = [a["id"] for a in client.get("/v1/analyses").json()["analyses"]]
        assert first.json()["id"] in listed
    from api.db import connect
    from api.keys import create_key

    engine = connect(f"sqlite:///{gateway.data_dir.resolve() / 'ich.db'}")
    stranger = create_key(engine, "stranger").key
    with gateway.client(stranger) as client:
        assert client.get(f"/v1/analyses/{first.json()['id']}").status_code == 404
        assert client.get("/v1/analyses").json()["analyses"] == []


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    fail_first: ClassVar[int] = 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Receiver.fail_first > 0:  # the first delivery fails: the gateway must retry
            _Receiver.fail_first -= 1
            self.send_response(503)
        else:
            _Receiver.received.append((dict(self.headers), body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def test_webhook_is_signed_and_retried(gateway: GatewayProcess, small_synth: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    from api.db import connect
    from api.keys import create_key

    issued = create_key(connect(f"sqlite:///{gateway.data_dir.resolve() / 'ich.db'}"), "hook")
    try:
        with gateway.client(issued.key) as client:
            answer = client.post(
                "/v1/analyses",
                files=_parts(_case(small_synth)),
                data={"callback_url": f"http://127.0.0.1:{server.server_port}/r"},
                headers={"Prefer": "respond-async"},
            )
            assert answer.status_code == 202, answer.text
            deadline = time.monotonic() + 60
            while not _Receiver.received and time.monotonic() < deadline:
                time.sleep(0.2)
    finally:
        server.shutdown()
    headers, body = _Receiver.received[0]
    assert verify(issued.client.webhook_secret, body, headers[SIGNATURE_HEADER])
    assert not verify("wrong-secret", body, headers[SIGNATURE_HEADER])
    assert not verify(issued.client.webhook_secret, body + b" ", headers[SIGNATURE_HEADER])
    payload = json.loads(body)
    assert headers["ICH-Event"] == "analysis.done" and payload["id"] == answer.json()["id"]
    assert payload["result"]["any_ich_flagged"] is True


def test_stow_rs_stores_then_analyses_the_complete_study(
    gateway: GatewayProcess, small_synth: Path
) -> None:
    files = sorted(_case(small_synth, 3).glob("*.dcm"))
    boundary = "ich-boundary"
    halves = [files[: len(files) // 2], files[len(files) // 2 :]]
    answers = []
    with gateway.client() as client:
        for half in halves:  # two requests: one study, one analysis once it is quiet
            body = (
                b"".join(
                    f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                    + p.read_bytes()
                    + b"\r\n"
                    for p in half
                )
                + f"--{boundary}--\r\n".encode()
            )
            answers.append(
                client.post(
                    "/dicomweb/studies",
                    content=body,
                    headers={
                        "Content-Type": f'multipart/related; type="application/dicom"; '
                        f"boundary={boundary}"
                    },
                )
            )
        bad = client.post(
            "/dicomweb/studies", content=b"x", headers={"Content-Type": "application/dicom"}
        )
        stored = [a.json()["00081199"]["Value"] for a in answers]
        urls = {item["00081190"]["Value"][0] for batch in stored for item in batch}
        assert [a.status_code for a in answers] == [200, 200] and len(urls) == 1
        assert sum(len(batch) for batch in stored) == len(files)
        body = _wait_outputs(client, urls.pop())
    assert bad.status_code == 415
    assert body["status"] == "done" and body["source"] == "stow"
    assert body["result"]["study_uid"] == pydicom.dcmread(files[0]).StudyInstanceUID


def test_service_endpoints_and_logs_without_patient_data(
    gateway: GatewayProcess, small_synth: Path
) -> None:
    assert httpx.get(f"{gateway.url}/readyz").json() == {
        "status": "ready",
        "checks": {"triton": True, "database": True},
    }
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'ich_http_requests_total{method="POST",route="/v1/analyses",status="200"}' in metrics
    assert 'ich_results_flagged_total{hemorrhage_class="any"}' in metrics
    assert "ich_queue_depth" in metrics and "ich_analysis_duration_seconds_bucket" in metrics
    problem = httpx.get(f"{gateway.url}/v1/problems/too-few-slices").json()
    assert problem["status"] == 422
    schema = httpx.get(f"{gateway.url}/openapi.json").json()
    assert {"/v1/analyses", "/v1/analyses/{analysis_id}/seg", "/dicomweb/studies"} <= set(
        schema["paths"]
    )
    header = pydicom.dcmread(sorted(_case(small_synth).glob("*.dcm"))[0])
    log = gateway.log.read_text()
    assert '"request_id"' in log
    for secret in (str(header.PatientName), str(header.PatientID), str(header.StudyInstanceUID)):
        assert secret and secret not in log, secret


def test_accepted_jobs_survive_a_killed_gateway(
    triton: TritonServer, small_synth: Path, tmp_path: Path
) -> None:
    running = start_gateway(tmp_path / "data", triton.grpc_url, ICH_WORKERS="1")
    ids = []
    with running.client() as client:
        for n in range(3):
            answer = client.post(
                "/v1/analyses",
                files=_parts(_case(small_synth, n)),
                headers={"Prefer": "respond-async"},
            )
            ids.append(answer.json()["id"])
    running.stop(signal.SIGKILL)
    from api.db import connect
    from api.jobs import JobStore

    store = JobStore(connect(f"sqlite:///{(tmp_path / 'data' / 'ich.db').resolve()}"))
    unfinished = [i for i in ids if store.get(i).status in ("queued", "running")]
    assert unfinished, "every analysis ended before the kill: nothing was left to resume"
    restarted = start_gateway(tmp_path / "data", triton.grpc_url)
    try:
        with restarted.client() as client:
            finished = [_wait_outputs(client, f"/v1/analyses/{i}") for i in ids]
    finally:
        restarted.stop()
    assert [f["status"] for f in finished] == ["done"] * 3


REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"


@pytest.mark.realdata
def test_real_cq500_studies_through_the_gateway_equal_direct_triton(
    gateway: GatewayProcess, triton: TritonServer
) -> None:
    """Three real series of two studies zipped together: the gateway selects what Triton
    would, adds the upload's warnings, and returns the same findings."""
    folder = REAL / "cq500" / "dicom"
    if not folder.is_dir():
        pytest.skip(f"{folder} is not present")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, str(path.relative_to(folder)))
    with gateway.client(timeout=600) as client:
        answer = client.post(
            "/v1/analyses", content=buffer.getvalue(), headers={"Content-Type": "application/zip"}
        )
    assert answer.status_code == 200, answer.text
    direct, _ = PipelineClient(triton.grpc_url).analyze(study_files(folder))
    served = ExamResult.model_validate(answer.json()["result"])
    assert served.model_copy(update={"warnings": []}) == direct.model_copy(update={"warnings": []})
    assert {w.code for w in direct.warnings} <= {w.code for w in served.warnings}


def test_the_gateway_runs_on_postgresql(
    triton: TritonServer, postgres: str, small_synth: Path, tmp_path: Path
) -> None:
    running = start_gateway(tmp_path / "data", triton.grpc_url, DATABASE_URL=postgres)
    try:
        with running.client() as client:
            answer = client.post("/v1/analyses", files=_parts(_case(small_synth)))
            listed = client.get("/v1/analyses").json()["analyses"]
    finally:
        running.stop()
    assert answer.status_code == 200 and answer.json()["status"] == "done"
    assert answer.json()["id"] in [a["id"] for a in listed]
    assert not (tmp_path / "data" / "ich.db").exists()  # nothing went to SQLite


def test_delete_removes_the_analysis_and_its_files(
    gateway: GatewayProcess, small_synth: Path
) -> None:
    with gateway.client() as client:
        answer = client.post("/v1/analyses", files=_parts(_case(small_synth, 1)))
        analysis_id = answer.json()["id"]
        _wait_outputs(client, f"/v1/analyses/{analysis_id}")
        assert (gateway.data_dir / "results" / analysis_id / "seg.dcm").is_file()
        assert client.delete(f"/v1/analyses/{analysis_id}").status_code == 204
        assert client.get(f"/v1/analyses/{analysis_id}").status_code == 404
        assert client.get(f"/v1/analyses/{analysis_id}/seg").status_code == 404
        assert client.delete(f"/v1/analyses/{analysis_id}").status_code == 404
    assert not (gateway.data_dir / "results" / analysis_id).exists()
    assert not (gateway.data_dir / "spool" / analysis_id).exists()

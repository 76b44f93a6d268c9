"""Studies pushed by DICOM C-STORE over real associations: received, analysed through Triton,
listed on the worklist, announced when positive, and their SEG and SR sent back."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import highdicom
import httpx
import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.dataset import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from api.process import GatewayProcess, start_gateway
from api.receiver import TRANSFER_SYNTAXES
from api.webhooks import verify
from ich.serving.server import TritonServer, free_port

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "cq500" / "dicom"
CALLING = "CT_SCANNER"
NOTICE_SECRET = "notice-secret-0123456789"


@dataclass
class StorageSCP:
    """A PACS that the gateway sends the SEG and SR to."""

    port: int
    received: list[Dataset] = field(default_factory=list)

    def handle(self, event: evt.Event) -> int:
        self.received.append(event.dataset)
        return 0x0000


class _Hooks(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def pacs() -> Iterator[StorageSCP]:
    scp = StorageSCP(free_port())
    ae = AE(ae_title="TEST_PACS")
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
    server = ae.start_server(
        ("127.0.0.1", scp.port), block=False, evt_handlers=[(evt.EVT_C_STORE, scp.handle)]
    )
    yield scp
    server.shutdown()


@pytest.fixture(scope="module")
def hooks() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/positive"
    server.shutdown()


@pytest.fixture(scope="module")
def receiving(
    triton: TritonServer,
    tmp_path_factory: pytest.TempPathFactory,
    pacs: StorageSCP,
    hooks: str,
) -> Iterator[tuple[GatewayProcess, int]]:
    dicom_port = free_port()
    running = start_gateway(
        tmp_path_factory.mktemp("receiving") / "data",
        triton.grpc_url,
        ICH_DICOM_PORT=str(dicom_port),
        ICH_DICOM_ALLOWED_AES=f"{CALLING},OTHER",
        ICH_DICOM_QUIET_S="1",
        ICH_DICOM_DESTINATION=f"TEST_PACS@127.0.0.1:{pacs.port}",
        ICH_POSITIVE_WEBHOOK_URL=hooks,
        ICH_POSITIVE_WEBHOOK_SECRET=NOTICE_SECRET,
        ICH_WEBHOOK_ALLOW_LOOPBACK="true",
        ICH_RATE_LIMIT_PER_MINUTE="6000",
    )
    yield running, dicom_port
    running.stop()


def _store(port: int, paths: list[Path], calling: str = CALLING) -> list[int]:
    """C-STORE every file in one association; the DIMSE status of each."""
    ae = AE(ae_title=calling)
    datasets = [pydicom.dcmread(p) for p in paths]
    for syntax in {d.file_meta.TransferSyntaxUID for d in datasets}:
        for sop_class in {d.SOPClassUID for d in datasets}:
            ae.add_requested_context(sop_class, syntax)
    association = ae.associate("127.0.0.1", port, ae_title="ICH_TRIAGE")
    assert association.is_established
    try:
        return [int(association.send_c_store(d).Status) for d in datasets]
    finally:
        association.release()


def _until(check: Callable[[], object], timeout_s: float = 120) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.3)
    raise AssertionError("timed out")


def _worklist(client: httpx.Client, study_uid: str) -> dict | None:
    for entry in client.get("/v1/worklist").json()["studies"]:
        if entry["study_uid"] == study_uid:
            return entry
    return None


def test_echo_answers_and_a_stranger_is_rejected(receiving: tuple[GatewayProcess, int]) -> None:
    _, port = receiving
    ae = AE(ae_title=CALLING)
    ae.add_requested_context(Verification)
    association = ae.associate("127.0.0.1", port, ae_title="ICH_TRIAGE")
    assert association.is_established
    assert association.send_c_echo().Status == 0x0000
    association.release()
    stranger = AE(ae_title="STRANGER")
    stranger.add_requested_context(Verification)
    refused = stranger.associate("127.0.0.1", port, ae_title="ICH_TRIAGE")
    assert refused.is_rejected and not refused.is_established


def test_a_pushed_study_is_triaged_and_its_seg_sent_back(
    receiving: tuple[GatewayProcess, int], small_synth: Path, pacs: StorageSCP
) -> None:
    gateway, port = receiving
    paths = sorted((sorted(small_synth.glob("case_*"))[1] / "dicom").glob("*.dcm"))
    images = [p for p in paths if pydicom.dcmread(p, stop_before_pixels=True).Modality == "CT"]
    statuses = _store(port, images)
    assert set(statuses) == {0x0000}
    study_uid = str(pydicom.dcmread(images[0], stop_before_pixels=True).StudyInstanceUID)
    with gateway.client() as client:
        entry = _until(lambda: (e := _worklist(client, study_uid)) and e["status"] == "done" and e)
        analysis = client.get(entry["link"]).json()
    assert analysis["source"] == "dimse" and entry["group"] == "positive"
    assert entry["any_ich_probability"] == analysis["result"]["any_ich_probability"]
    volumes = {c["hemorrhage_class"]: c["total_volume_ml"] for c in analysis["result"]["classes"]}
    assert {c["hemorrhage_class"]: c["total_volume_ml"] for c in entry["classes"]} == volumes

    _until(lambda: len([d for d in pacs.received if d.StudyInstanceUID == study_uid]) >= 2)
    sent = [d for d in pacs.received if d.StudyInstanceUID == study_uid]
    seg = next(d for d in sent if d.Modality == "SEG")
    parsed = highdicom.seg.Segmentation.from_dataset(seg)
    assert parsed.number_of_segments == 3
    assert {d.Modality for d in sent} == {"SEG", "SR"}

    def notice() -> tuple[dict[str, str], bytes] | None:
        mine = [h for h in _Hooks.received if json.loads(h[1])["analysis_id"] == analysis["id"]]
        return mine[0] if mine else None

    headers, body = _until(notice)
    assert headers["ICH-Event"] == "analysis.positive"
    assert verify(NOTICE_SECRET, body, headers["ICH-Signature"])
    sent_notice = json.loads(body)
    assert sent_notice["study_uid"] == study_uid and sent_notice["link"] == entry["link"]
    assert {c["hemorrhage_class"]: c["total_volume_ml"] for c in sent_notice["classes"]} == volumes
    header = pydicom.dcmread(images[0], stop_before_pixels=True)
    private = [str(v) for v in (header.PatientName, header.PatientID, header.PatientBirthDate)]
    assert private[0] and not [v for v in private if v and v in body.decode()]


def test_the_worklist_puts_positive_studies_first(receiving: tuple[GatewayProcess, int]) -> None:
    gateway, _ = receiving
    with gateway.client() as client:
        studies = client.get("/v1/worklist").json()["studies"]
    order = {"positive": 0, "pending": 1, "failed": 2, "negative": 3}
    groups = [order[s["group"]] for s in studies]
    assert groups == sorted(groups)
    positives = [s["any_ich_probability"] for s in studies if s["group"] == "positive"]
    assert positives == sorted(positives, reverse=True)


@pytest.mark.realdata
def test_the_real_cq500_series_arrive_and_are_analysed(
    receiving: tuple[GatewayProcess, int], pacs: StorageSCP
) -> None:
    """Two studies in one association: the 238-slice thin series with blood is found and
    analysed (its SEG sent back); the study of one image fails as too few slices."""
    if not REAL.is_dir():
        pytest.skip(f"{REAL} is not present")
    gateway, port = receiving
    paths = sorted(p for p in REAL.rglob("*") if p.is_file())
    assert set(_store(port, paths)) == {0x0000}
    studies = Counter(
        str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID) for p in paths
    )
    thin = studies.most_common(1)[0][0]
    with gateway.client() as client:
        entry = _until(
            lambda: (e := _worklist(client, thin)) and e["status"] == "done" and e,
            timeout_s=240,
        )
        assert entry["group"] == "positive"
        failed = [s for s in client.get("/v1/worklist").json()["studies"] if s["group"] == "failed"]
    assert any(f["problem"] == "Too few slices" for f in failed)
    _until(lambda: any(d.StudyInstanceUID == thin and d.Modality == "SEG" for d in pacs.received))


def test_a_full_disk_refuses_instances_as_out_of_resources(
    app_client: Callable[..., TestClient], tmp_path: Path, series: Callable[..., list[Dataset]]
) -> None:
    from api.db import connect
    from api.keys import create_key

    data = tmp_path / "data"
    create_key(connect(f"sqlite:///{(data / 'ich.db').resolve()}"), "local")
    port = free_port()
    app_client(data_dir=data, dicom_port=port, min_free_bytes=1 << 62)
    folder = tmp_path / "study"
    folder.mkdir()
    for n, dataset in enumerate(series(slices=2)):
        dataset.save_as(folder / f"{n}.dcm", enforce_file_format=True)
    assert set(_store(port, sorted(folder.glob("*.dcm")))) == {0xA700}

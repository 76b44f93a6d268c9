"""DICOMweb pull against a real QIDO-RS/WADO-RS endpoint (a small server over the synthetic
studies): the head CT study is fetched once and analysed, the abdomen study is left alone."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from io import BytesIO
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from api.process import GatewayProcess, start_gateway
from ich.serving.server import TritonServer

STUDY_TAGS = ("0020000D", "00081030", "00080020", "00080061")
SERIES_TAGS = ("0020000D", "0020000E", "00080060", "0008103E", "00180015")


class _DicomWeb(BaseHTTPRequestHandler):
    """QIDO-RS studies and series searches, WADO-RS series retrieval (multipart/related)."""

    instances: ClassVar[list[tuple[Dataset, bytes]]] = []
    queries: ClassVar[list[dict[str, list[str]]]] = []
    retrieved: ClassVar[list[str]] = []
    failures: ClassVar[int] = 0
    """Retrievals to answer 500 first (a PACS that has a bad moment)."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        query = parse_qs(url.query)
        if parts == ["studies"]:
            self.queries.append(query)
            studies = self._unique(STUDY_TAGS, lambda d: True)
            for study in studies:  # NumberOfStudyRelatedInstances
                uid = study["0020000D"]["Value"][0]
                count = sum(d.StudyInstanceUID == uid for d, _ in self.instances)
                study["00201208"] = {"vr": "IS", "Value": [count]}
            self._json(studies, query)
        elif len(parts) == 3 and parts[2] == "series":
            series = self._unique(SERIES_TAGS, lambda d: d.StudyInstanceUID == parts[1])
            self._json(series, query)
        elif len(parts) == 4:
            self.retrieved.append(parts[3])
            if len(self.retrieved) <= self.failures:
                self.send_error(500)
                return
            boundary = "wado-boundary"
            body = (
                b"".join(
                    f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                    + raw
                    + b"\r\n"
                    for ds, raw in self.instances
                    if ds.SeriesInstanceUID == parts[3]
                )
                + f"--{boundary}--\r\n".encode()
            )
            self._send(body, f'multipart/related; type="application/dicom"; boundary={boundary}')
        else:
            self.send_error(404)

    def _unique(self, tags: tuple[str, ...], wanted: object) -> list[dict]:
        found: dict[tuple, dict] = {}
        for dataset, _ in self.instances:
            if wanted(dataset):  # type: ignore[operator]
                document = {t: v for t, v in dataset.to_json_dict().items() if t in tags}
                found.setdefault(tuple(json.dumps(document, sort_keys=True)), document)
        return list(found.values())

    def _json(self, documents: list[dict], query: dict[str, list[str]]) -> None:
        """One page of the matches (``offset``, ``limit``), as QIDO-RS pages them."""
        start = int(query.get("offset", ["0"])[0])
        stop = start + int(query.get("limit", [str(len(documents))])[0])
        self._send(json.dumps(documents[start:stop]).encode(), "application/dicom+json")

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def _study(folder: Path, head: bool) -> list[tuple[Dataset, bytes]]:
    study, series = generate_uid(), generate_uid()
    out = []
    for path in sorted(folder.glob("*.dcm")):
        dataset = pydicom.dcmread(path)
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study, series
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        if not head:
            dataset.SeriesDescription, dataset.BodyPartExamined = "ABDOMEN 5mm", "ABDOMEN"
        buffer = BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        out.append((dataset, buffer.getvalue()))
    return out


@pytest.fixture(params=[0, 1], ids=["answers", "fails-once"])
def dicomweb(
    small_synth: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[str, type[_DicomWeb]]]:
    cases = sorted(small_synth.glob("case_*"))
    handler = type(
        "DicomWeb",
        (_DicomWeb,),
        {
            "instances": _study(cases[2] / "dicom", head=True)
            + _study(cases[3] / "dicom", head=False),
            "queries": [],
            "retrieved": [],
            "failures": request.param,
        },
    )
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", handler
    server.shutdown()


def test_new_head_ct_studies_are_pulled_once_and_analysed(
    triton: TritonServer, tmp_path: Path, dicomweb: tuple[str, type[_DicomWeb]]
) -> None:
    url, handler = dicomweb
    head = next(d for d, _ in handler.instances if d.BodyPartExamined == "HEAD")
    running: GatewayProcess = start_gateway(
        tmp_path / "data",
        triton.grpc_url,
        ICH_DICOMWEB_URL=url,
        ICH_DICOMWEB_POLL_S="1",
        ICH_DICOMWEB_LOOKBACK_DAYS="400",
    )
    try:
        with running.client() as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                studies = client.get("/v1/worklist").json()["studies"]
                if studies and studies[0]["status"] == "done":
                    break
                time.sleep(0.5)
            time.sleep(2.5)  # more polls: nothing is fetched twice
            studies = client.get("/v1/worklist").json()["studies"]
    finally:
        running.stop()
    assert [s["study_uid"] for s in studies] == [head.StudyInstanceUID]
    assert studies[0]["source"] == "dicomweb" and studies[0]["group"] == "positive"
    # fetched once, or once more after a failed retrieval released the study
    assert handler.retrieved == [head.SeriesInstanceUID] * (1 + handler.failures)
    assert len(handler.queries) >= 3
    query = handler.queries[0]
    assert query["ModalitiesInStudy"] == ["CT"] and query["StudyDate"][0].endswith("-")

"""Client and AsyncClient against the real gateway and Triton: results, DICOM objects, errors,
idempotent retries and listing."""

from __future__ import annotations

import asyncio
import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from ich_client import (
    AnalysisFailedError,
    AsyncClient,
    AuthenticationError,
    Client,
    ConnectionFailedError,
    HemorrhageClass,
    NotFoundError,
    Retries,
    Status,
    StudyInputError,
    WaitTimeoutError,
)

from api.keys import IssuedKey
from api.process import GatewayProcess, start_gateway
from ich.schema import ExamResult
from ich.serving.server import TritonServer

RATE_LIMIT = 120
"""Requests a minute for the rate-limited gateway: a burst of that many, then one each 0.5 s."""


@pytest.fixture(scope="module")
def rate_limited(
    triton: TritonServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A second gateway process whose rate limit the tests reach quickly."""
    running = start_gateway(
        tmp_path_factory.mktemp("limited") / "data",
        triton.grpc_url,
        ICH_RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT),
    )
    yield running
    running.stop()


def test_analyze_a_folder_returns_the_gateways_result(
    client: Client, gateway: GatewayProcess, study: Path
) -> None:
    sent: list[tuple[int, int]] = []
    analysis = client.analyze(study, progress=lambda done, total: sent.append((done, total)))
    assert analysis.status is Status.DONE and analysis.result is not None
    with gateway.client() as raw:
        served = raw.get(f"/v1/analyses/{analysis.id}").json()
    assert ExamResult.model_validate(served["result"]) == ExamResult.model_validate(
        analysis.result.model_dump(mode="json")
    )
    assert analysis.result.any_ich_flagged and analysis.result.hemorrhages
    assert analysis.result.finding(HemorrhageClass.IPH).hemorrhage_class is HemorrhageClass.IPH
    assert analysis.model is not None and analysis.model.name == "ich-cpu-default"
    done = [d for d, _ in sent]
    assert done == sorted(done) and sent[-1][0] == sent[-1][1] > sum(
        p.stat().st_size for p in study.glob("*.dcm")
    )


def test_submit_then_wait_for_the_dicom_objects(client: Client, study: Path) -> None:
    queued = client.submit(study)
    assert queued.status in (Status.QUEUED, Status.RUNNING, Status.DONE)
    done = queued.wait(timeout=120, outputs=True)
    assert done.id == queued.id and done.status is Status.DONE
    seg = pydicom.dcmread(io.BytesIO(done.seg()))
    sr = pydicom.dcmread(io.BytesIO(done.sr()))
    assert seg.Modality == "SEG" and sr.Modality == "SR"
    assert seg.StudyInstanceUID == done.result.study_uid == sr.StudyInstanceUID
    assert done.overlay(0)[:8] == b"\x89PNG\r\n\x1a\n"
    assert done.id in {a.id for a in client.list(limit=20)}


def test_a_zip_and_bytes_are_studies_too(client: Client, study: Path, tmp_path: Path) -> None:
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(study.glob("*.dcm")):
            out.write(path, f"series/{path.name}")
    from_file = client.analyze(archive)
    from_bytes = client.analyze(archive.read_bytes())
    assert from_file.result == from_bytes.result
    assert from_file.result.series_uid == client.analyze(study).result.series_uid


def test_an_idempotency_key_returns_the_first_analysis(client: Client, study: Path) -> None:
    first = client.submit(study, idempotency_key="accession-0001")
    again = client.submit(study, idempotency_key="accession-0001")
    assert again.id == first.id


class _DropsFirstAnswer(httpx.HTTPTransport):
    """The real gateway receives every request, but the first answer to a submission is lost
    on the way back, as when a connection breaks after the upload."""

    def __init__(self) -> None:
        super().__init__()
        self.submissions: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST":
            self.submissions.append(request.headers["idempotency-key"])
            if len(self.submissions) == 1:
                response.read()
                raise httpx.ReadError("connection reset by peer", request=request)
        return response


def test_a_lost_answer_is_retried_without_analysing_twice(
    gateway: GatewayProcess, study: Path
) -> None:
    transport = _DropsFirstAnswer()
    retries = Retries(attempts=3, backoff_s=0.05)
    with Client(gateway.url, api_key=gateway.key, retries=retries, transport=transport) as sdk:
        before = {a.id for a in sdk.list(limit=500)}
        analysis = sdk.analyze(study)
        created = {a.id for a in sdk.list(limit=500)} - before
    assert len(transport.submissions) == 2 and len(set(transport.submissions)) == 1
    assert created == {analysis.id} and analysis.status is Status.DONE


class _Records(httpx.HTTPTransport):
    """Passes every request to the real gateway and notes when each answer came."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[tuple[float, int, str | None]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.answers.append(
            (time.monotonic(), response.status_code, response.headers.get("retry-after"))
        )
        return response


def test_retry_after_is_honoured_until_the_rate_limit_lets_calls_through(
    rate_limited: GatewayProcess,
) -> None:
    transport = _Records()
    retries = Retries(attempts=4)
    with Client(
        rate_limited.url, api_key=rate_limited.key, retries=retries, transport=transport
    ) as sdk:
        for _ in range(RATE_LIMIT + 4):
            assert sdk.list(limit=1) == []
    limited = [i for i, (_, status, _) in enumerate(transport.answers) if status == 429]
    assert limited, "the rate limit was never reached"
    for i in limited:
        stamp, _, retry_after = transport.answers[i]
        assert retry_after is not None
        assert transport.answers[i + 1][0] - stamp >= float(retry_after) - 0.05


def test_errors_are_typed_with_the_problem_fields(
    gateway: GatewayProcess, client: Client, small_synth: Path, tmp_path: Path
) -> None:
    stranger = Client(gateway.url, api_key="ich_00000000_not-a-key")
    with stranger, pytest.raises(AuthenticationError) as refused:
        stranger.list()
    assert refused.value.status == 401 and refused.value.code == "unknown-key"
    assert refused.value.detail and refused.value.type.endswith("/unknown-key")

    report = small_synth / "manifest.json"
    with pytest.raises(AnalysisFailedError) as failed:
        client.analyze([report])
    assert failed.value.status == 422 and failed.value.code == "no-dicom"
    assert failed.value.analysis_id and client.get(failed.value.analysis_id).problem is not None

    with pytest.raises(NotFoundError):
        client.get("00000000-0000-0000-0000-000000000000")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StudyInputError, match="No files"):
        client.analyze(tmp_path / "empty")
    with pytest.raises(StudyInputError, match="does not exist"):
        client.analyze(tmp_path / "missing")


def test_an_unreachable_gateway_is_one_clear_error(tmp_path: Path, study: Path) -> None:
    sdk = Client("http://127.0.0.1:9", api_key="k", retries=Retries(2, 0.01))
    with sdk, pytest.raises(ConnectionFailedError, match=r"127\.0\.0\.1:9/v1/analyses.*2 tries"):
        sdk.analyze(study)


def test_the_async_client_does_the_same(
    gateway: GatewayProcess, issued: IssuedKey, study: Path
) -> None:
    async def scenario() -> None:
        async with AsyncClient(gateway.url, api_key=issued.key) as sdk:
            health = await sdk.health()
            assert health.live and health.ready and health.checks["triton"]
            results = await asyncio.gather(sdk.analyze(study), sdk.submit(study))
            done = await results[1].wait(timeout=120, outputs=True)
            assert results[0].result == done.result
            assert pydicom.dcmread(io.BytesIO(await done.seg())).Modality == "SEG"
            assert {a.id for a in await sdk.list()} >= {results[0].id, done.id}
            await done.delete()
            with pytest.raises(NotFoundError):
                await sdk.get(done.id)

    asyncio.run(scenario())


def test_waiting_past_the_timeout_raises_with_the_analysis(client: Client, study: Path) -> None:
    queued = client.submit(study)
    seen: list[Status] = []
    with pytest.raises(WaitTimeoutError, match="still") as late:
        queued.wait(timeout=0.05, watch=lambda a: seen.append(a.status))
    assert late.value.analysis.id == queued.id and seen
    done = queued.wait(timeout=120, watch=lambda a: seen.append(a.status))
    assert done.status is Status.DONE and seen[-1] is Status.DONE


def test_the_worklist_lists_this_clients_studies_in_reading_order(
    gateway: GatewayProcess, issued: IssuedKey, study: Path
) -> None:
    with Client(gateway.url, api_key=issued.key) as sdk:
        done = sdk.analyze(study)
        entries = sdk.worklist(hours=1)
    assert entries[0].id == done.id and entries[0].group == "positive"
    assert entries[0].any_ich_probability == done.result.any_ich_probability
    assert [c.total_volume_ml for c in entries[0].classes] == [
        c.total_volume_ml for c in done.result.classes
    ]

"""The served ensemble gives what ``ich analyze`` gives, over gRPC and HTTP, and survives
bad input."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from typer.testing import CliRunner

from ich.cli import app
from ich.dicom import load
from ich.model.analyzer import Analyzer, torch_forward
from ich.model.contract import DETECTOR_OUTPUTS
from ich.preprocess import BLOCK_PLANES, BLOCKS_PER_CALL, run_blocks
from ich.schema import ExamResult
from ich.serving.client import PipelineClient, RemoteAnalysisError, study_files
from ich.serving.server import TritonServer, free_port
from ich.serving.steps import preprocess

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_served_synthetic_study_equals_the_in_process_analysis(
    triton: TritonServer, analyzer: Analyzer, small_synth: Path, protocol: str
) -> None:
    url = triton.grpc_url if protocol == "grpc" else triton.http_url
    client = PipelineClient(url, protocol)
    try:
        for case in sorted(small_synth.glob("case_*"))[:2]:
            folder = case / "dicom"
            served, served_label = client.analyze(study_files(folder))
            local, local_label = analyzer(load(folder))
            assert served == local, case.name
            np.testing.assert_array_equal(served_label, local_label)
    finally:
        client.close()


@pytest.mark.realdata
@pytest.mark.parametrize("series", ["cq500/dicom", "ge_head_gantry_tilt"])
def test_real_series_are_served_as_analysed_here(
    triton: TritonServer, analyzer: Analyzer, series: str
) -> None:
    """CQ500 (three series: the served selection is the local one) and a tilted GE series."""
    folder = REAL / series
    if not folder.is_dir():
        pytest.skip(f"real samples not found at {folder}")
    client = PipelineClient(triton.grpc_url)
    try:
        served, served_label = client.analyze(study_files(folder))
    finally:
        client.close()
    local, local_label = analyzer(load(folder))
    assert served == local
    assert served.warnings == local.warnings
    np.testing.assert_array_equal(served_label, local_label)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_bad_input_is_named_and_the_server_stays_up(
    triton: TritonServer, small_synth: Path, protocol: str
) -> None:
    url = triton.grpc_url if protocol == "grpc" else triton.http_url
    client = PipelineClient(url, protocol)
    try:
        with pytest.raises(RemoteAnalysisError, match="not a DICOM file") as caught:
            client.analyze([b"not dicom", b"\x00" * 200])
        assert caught.value.code == "no-dicom"
        files = study_files(next(small_synth.glob("case_*")) / "dicom")
        with pytest.raises(RemoteAnalysisError) as caught:
            client.analyze([*files[:1], files[0][: len(files[0]) // 2]])
        assert caught.value.code != "analysis-failed", caught.value.message
        result, _ = client.analyze(files)
        assert result.study_uid
    finally:
        client.close()
    assert triton.ready()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_an_unreachable_server_is_named_as_such(protocol: str) -> None:
    client = PipelineClient(f"127.0.0.1:{free_port()}", protocol, timeout_s=10)
    with pytest.raises(RemoteAnalysisError) as caught:
        client.analyze([b"anything"])
    assert caught.value.code == "triton-unavailable"


def _detector_counts(triton: TritonServer) -> tuple[int, int]:
    stats = httpx.get(f"http://{triton.http_url}/v2/models/ich_detector/stats").json()
    model = stats["model_stats"][0]
    return int(model["inference_count"]), int(model["execution_count"])


def test_the_detector_batches_concurrent_studies_and_answers_each_its_own(
    triton: TritonServer, analyzer: Analyzer, small_synth: Path
) -> None:
    """Requests queued while the detector is busy run as one batch (dynamic batching); each
    gets back the outputs of its own blocks."""
    spec = analyzer.config.input
    studies = [
        preprocess(study_files(case / "dicom"), spec, BLOCK_PLANES, 32).blocks
        for case in sorted(small_synth.glob("case_*"))
    ]
    before = _detector_counts(triton)
    client = httpclient.InferenceServerClient(triton.http_url, concurrency=len(studies))
    answers = []
    try:
        for blocks in studies:
            request = httpclient.InferInput("blocks", list(blocks.shape), "FP32")
            request.set_data_from_numpy(blocks, binary_data=True)
            answers.append(client.async_infer("ich_detector", [request]))
        results = [answer.get_result(timeout=300) for answer in answers]
    finally:
        client.close()
    inferences, executions = (a - b for a, b in zip(_detector_counts(triton), before, strict=True))
    assert inferences == sum(len(b) for b in studies)
    assert executions < len(studies), "no request was batched with another"
    forward = torch_forward(analyzer.detector)
    for blocks, result in zip(studies, results, strict=True):
        expected = run_blocks(forward, blocks, BLOCKS_PER_CALL)
        served = [result.as_numpy(name) for name in DETECTOR_OUTPUTS]
        for name, a, b in zip(DETECTOR_OUTPUTS, served, expected, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_ich_analyze_through_the_server_prints_the_in_process_result(
    triton: TritonServer, analyzer: Analyzer, small_synth: Path
) -> None:
    folder = sorted(small_synth.glob("case_*"))[0] / "dicom"
    out = CliRunner().invoke(app, ["analyze", str(folder), "--json", "--server", triton.grpc_url])
    assert out.exit_code == 0, out.output
    assert ExamResult.model_validate_json(out.stdout) == analyzer(load(folder))[0]
    out = CliRunner().invoke(app, ["analyze", str(folder), "--server", f"127.0.0.1:{free_port()}"])
    assert out.exit_code == 2 and "unreachable" in out.output


def test_ich_triton_serves_until_sigterm_and_stops_its_server() -> None:
    ports = [str(free_port()) for _ in range(3)]
    command = [sys.executable, "-m", "ich", "triton", "--http-port", ports[0],
               "--grpc-port", ports[1], "--metrics-port", ports[2]]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = iter(process.stdout.readline, "")
        ready = next(line for line in lines if "Triton ready" in line or "rror" in line)
        assert "Triton ready" in ready
        server_pid = int(re.search(r"pid (\d+)", ready).group(1))  # type: ignore[union-attr]
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/v2/health/ready").status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        process.kill()
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)

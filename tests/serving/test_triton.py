"""The served ensemble gives what ``ich analyze`` gives, over gRPC and HTTP, and survives
bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ich.dicom import load
from ich.model.runtime import Analyzer
from ich.serving.client import PipelineClient, RemoteAnalysisError, study_files
from ich.serving.server import TritonServer, free_port

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
        assert caught.value.code != "internal-error", caught.value.message
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

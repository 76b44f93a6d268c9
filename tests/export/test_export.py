"""``ich export``: the committed repository is its output, ONNX agrees with PyTorch and serves,
GPU configs name the native backends, TensorRT says where it can run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from export.errors import ExportError
from export.formats import Format, Target
from export.repository import export_repository, sha256
from ich.cli import app
from ich.dicom import load
from ich.model.analyzer import Analyzer, quiet_jit
from ich.model.checkpoint import DEFAULT_MODEL
from ich.serving.client import PipelineClient, study_files
from ich.serving.server import REPOSITORY, TritonServer, free_port

MODELS = ("ich_pipeline", "ich_preprocess", "ich_detector", "ich_postprocess")


def _texts(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text()
        for name in MODELS
        for p in sorted((root / name).rglob("*"))
        if p.suffix in {".pbtxt", ".py"}
    }


def test_the_committed_repository_is_what_ich_export_writes(tmp_path: Path) -> None:
    """A stale repository (model retrained, config changed) fails here: re-run `ich export`."""
    done = export_repository(DEFAULT_MODEL, tmp_path, Format.torchscript, Target.cpu)
    assert _texts(tmp_path) == _texts(REPOSITORY)
    assert (
        f'"{sha256(DEFAULT_MODEL)}"' in (REPOSITORY / "ich_detector" / "config.pbtxt").read_text()
    )
    blocks = torch.rand(1, 3, 20, 256, 256)
    with quiet_jit():
        fresh = torch.jit.load(str(done.weights))
        committed = torch.jit.load(str(REPOSITORY / "ich_detector" / "1" / "model.pt"))
    with torch.inference_mode():
        for a, b in zip(fresh(blocks), committed(blocks), strict=True):
            assert torch.equal(a, b)


def test_gpu_configs_name_the_native_backends(tmp_path: Path) -> None:
    export_repository(DEFAULT_MODEL, tmp_path, Format.torchscript, Target.gpu)
    config = (tmp_path / "ich_detector" / "config.pbtxt").read_text()
    assert 'platform: "pytorch_libtorch"' in config and "KIND_GPU" in config
    assert "max_batch_size: 32" in config and "dynamic_batching" in config
    assert sorted(p.name for p in (tmp_path / "ich_detector" / "1").iterdir()) == ["model.pt"]
    # The python steps stay on the CPU around the GPU detector.
    assert 'backend: "python"' in (tmp_path / "ich_preprocess" / "config.pbtxt").read_text()


def test_tensorrt_says_where_it_can_run(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="--target gpu"):
        export_repository(DEFAULT_MODEL, tmp_path, Format.tensorrt, Target.cpu)
    if importlib.util.find_spec("tensorrt") is None or not torch.cuda.is_available():
        out = CliRunner().invoke(app, ["export", "--format", "tensorrt", "--target", "gpu",
                                       "--repository", str(tmp_path)])  # fmt: skip
        assert out.exit_code == 2
        assert "TensorRT is not installed" in out.output or "no GPU" in out.output


def test_onnx_agrees_with_pytorch_and_serves_like_it(tmp_path: Path, small_synth: Path) -> None:
    repository = tmp_path / "repository"
    out = CliRunner().invoke(app, ["export", "--format", "onnx", "--target", "cpu",
                                   "--repository", str(repository)])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "onnxruntime-cpu" in out.output and "agree" in out.output
    assert (repository / "ich_detector" / "1" / "model.onnx").is_file()
    folder = sorted(small_synth.glob("case_*"))[0] / "dicom"
    server = TritonServer(repository, free_port(), free_port(), free_port(), cache=tmp_path)
    with server:
        client = PipelineClient(server.grpc_url)
        try:
            served, label = client.analyze(study_files(folder))
        finally:
            client.close()
    local, local_label = Analyzer()(load(folder))
    assert [h.hemorrhage_class for h in served.hemorrhages] == [
        h.hemorrhage_class for h in local.hemorrhages
    ]
    for a, b in zip(served.hemorrhages, local.hemorrhages, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-4)
        assert a.volume_ml == pytest.approx(b.volume_ml, rel=0.02, abs=0.05)
    assert np.mean(label != local_label) < 1e-3

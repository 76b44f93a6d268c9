"""The shipped model: small, documented, and it finds an obvious bleed in a study it never saw.

The study is drawn from a seed outside every training and validation seed, with one 20 mL
lobar IPH (the paper's medium stratum): the plainest finding there is. A regression in the
weights, the model grid or the postprocess would miss it or mismeasure it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models.detection.image_list import ImageList
from typer.testing import CliRunner

from ich.cli import app
from ich.dicom import load
from ich.model.checkpoint import DEFAULT_MODEL, load_model
from ich.model.detector import Detector
from ich.phantom.generate import CaseOptions, synthesize
from ich.phantom.lesions import Kind, LesionSpec
from ich.phantom.study import study_files, write_files
from ich.pipeline import prepare
from ich.preprocess import blocks
from ich.schema import ExamResult, HemorrhageClass

SEED = 777_001


def test_the_shipped_model_is_small_and_carries_its_operating_point() -> None:
    assert DEFAULT_MODEL.stat().st_size < 25 * 2**20
    _, config, point, provenance = load_model(DEFAULT_MODEL)
    assert config.input.size == 256 and config.input.context == 5
    assert point.source.startswith("most sensitive")
    assert provenance["name"] == "real" and provenance["training_cases"] == 124
    assert "cross-validation" in point.source


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    options = CaseOptions(
        lesions=(LesionSpec(Kind.IPH, 20.0, "medium", "lobar"),), slice_mm=5.0, matrix=512
    )
    case = synthesize(SEED, 0, options)
    folder = tmp_path_factory.mktemp("study")
    write_files(folder, study_files(case, distractors=False))
    return folder, sum(i.volume_ml for i in case.instances)


def test_ich_analyze_finds_and_measures_a_medium_iph(study: tuple[Path, float]) -> None:
    folder, truth_ml = study
    out = CliRunner().invoke(app, ["analyze", str(folder), "--json", "--overlays",
                                   str(folder / "overlays")])  # fmt: skip
    assert out.exit_code == 0, out.output
    result = ExamResult.model_validate_json(out.stdout)
    iph = next(f for f in result.classes if f.hemorrhage_class is HemorrhageClass.IPH)
    assert result.any_ich_flagged and iph.flagged
    assert iph.total_volume_ml == pytest.approx(truth_ml, rel=0.35)
    assert list((folder / "overlays").glob("plane_*.png"))


def test_the_batched_heads_find_what_torchvisions_heads_find_plane_by_plane(
    study: tuple[Path, float],
) -> None:
    """The export-friendly inference path (all planes at once) against torchvision's own
    RPN and ROI heads run image by image, on the shipped weights and a real bleed."""
    network, config, _, _ = load_model(DEFAULT_MODEL)
    detector = Detector.for_config(network, config)
    volume = load(study[0])
    series = torch.from_numpy(blocks(prepare(volume, config.input).series, 5))
    with torch.inference_mode():
        boxes, labels, scores, masks, counts = (t.flatten(0, 1) for t in detector(series))
        features = network.backbone(series)
        sizes = [(config.input.size,) * 2] * len(counts)
        proposals, _ = network.rpn(ImageList(series, sizes), features)
        found, _ = network.roi_heads(features, proposals, sizes)
    assert counts.sum() > 0
    for plane, expected in enumerate(found):
        n = len(expected["boxes"])
        assert counts[plane] == n, plane
        torch.testing.assert_close(boxes[plane, :n], expected["boxes"], atol=1e-3, rtol=0)
        assert torch.equal(labels[plane, :n], expected["labels"])
        torch.testing.assert_close(scores[plane, :n], expected["scores"], atol=1e-5, rtol=0)
        torch.testing.assert_close(masks[plane, :n], expected["masks"][:, 0], atol=1e-4, rtol=0)
        assert not scores[plane, n:].any() and not labels[plane, n:].any()


def test_the_shipped_model_does_not_flag_the_real_routine_head(real: Path) -> None:
    """A real full-range head without blood (GE, tilted gantry) that the synthetic-only model
    flagged: learning real anatomy must keep it below the operating point."""
    out = CliRunner().invoke(app, ["analyze", str(real / "ge_head_gantry_tilt"), "--json"])
    assert out.exit_code == 0, out.output
    result = ExamResult.model_validate_json(out.stdout)
    assert not result.any_ich_flagged, result.any_ich_probability

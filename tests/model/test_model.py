"""The hybrid 3D/2D Mask R-CNN: shapes, the 3D fold, scripting, determinism, model files."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torchvision.ops import batched_nms

from ich.model.analyzer import compile_detector
from ich.model.backbone import HybridBackbone
from ich.model.batched_mask_rcnn import grouped_nms
from ich.model.checkpoint import ModelFileError, load_model, save_model
from ich.model.config import DetectorConfig, ModelConfig, Stage
from ich.model.detector import Detector
from ich.preprocess import InputSpec

TINY = ModelConfig(
    input=InputSpec(size=64, pixel_mm=4.0),
    detector=DetectorConfig(
        stem=4,
        stages=(Stage(channels=8), Stage(channels=8), Stage(channels=16), Stage(channels=16)),
        fpn_channels=8,
        representation=16,
        mask_layers=(8,),
        detections_per_plane=5,
    ),
)


def test_the_3d_stages_fold_five_planes_into_2d_maps_at_four_strides(
    trained_looking: Callable[[ModelConfig], torch.nn.Module],
) -> None:
    backbone = trained_looking(TINY).backbone.body
    assert isinstance(backbone, HybridBackbone)
    x = torch.rand(2, 15, 64, 64)
    features = backbone(x)
    assert [tuple(f.shape) for f in features.values()] == [
        (2, 8, 16, 16), (2, 8, 8, 8), (2, 16, 4, 4), (2, 16, 2, 2)
    ]  # fmt: skip
    # Every one of the five planes (of every window) reaches the deepest features.
    for plane in range(5):
        changed = x.clone()
        changed[:, [plane, 5 + plane, 10 + plane]] += 0.5
        assert not torch.allclose(backbone(changed)["3"], features["3"])


def test_a_series_in_one_pass_gives_the_features_of_its_stacks(
    trained_looking: Callable[[ModelConfig], torch.nn.Module],
) -> None:
    """Inference runs the 3D stages once over a series; training runs them per stack."""
    backbone = trained_looking(TINY).backbone
    series = torch.rand(3, 6 + 4, 64, 64)
    stacks = torch.stack([series[:, p : p + 5].reshape(15, 64, 64) for p in range(6)])
    with torch.inference_mode():
        once = backbone(series[None])
        each = backbone(stacks)
    for level in each:
        torch.testing.assert_close(once[level], each[level], atol=1e-5, rtol=1e-4)


def test_config_checks_that_the_3d_stages_match_the_context() -> None:
    with pytest.raises(ValueError, match="turn 5 planes into one"):
        ModelConfig(input=InputSpec(context=3))
    with pytest.raises(ValueError, match=r"C2\.\.C5"):
        DetectorConfig(stages=(Stage(channels=8),))


def test_the_detector_scripts_and_gives_the_same_answer_every_time(
    trained_looking: Callable[[ModelConfig], torch.nn.Module],
) -> None:
    detector = Detector.for_config(trained_looking(TINY), TINY)
    x = torch.rand(2, 3, 3 + 4, 64, 64)
    with torch.inference_mode():
        eager = detector(x)
        again = detector(x)
        compiled = compile_detector(detector)(x)
    names = ("boxes", "labels", "scores", "masks", "counts")
    for name, a, b, c in zip(names, eager, again, compiled, strict=True):
        assert torch.equal(a, b), name
        assert a.shape == c.shape, name
    assert eager[0].shape == (2, 3, 5, 4) and eager[3].shape == (2, 3, 5, 28, 28)
    assert eager[4].tolist() == compiled[4].tolist()
    torch.testing.assert_close(eager[2], compiled[2], atol=1e-4, rtol=1e-3)
    with pytest.raises(Exception, match="model grid"):
        compile_detector(detector)(torch.rand(1, 3, 7, 32, 32))
    with pytest.raises(Exception, match="context"):
        detector(torch.rand(1, 3, 4, 64, 64))


def test_model_files_round_trip_and_bad_files_are_named(
    tmp_path: Path, trained_looking: Callable[[ModelConfig], torch.nn.Module]
) -> None:
    network = trained_looking(TINY)
    save_model(tmp_path / "m.pt", network, TINY, provenance={"note": "test"})
    loaded, config, point, provenance = load_model(tmp_path / "m.pt")
    assert config == TINY and provenance == {"note": "test"}
    assert point.source.startswith("untuned")
    for (name, a), b in zip(
        network.state_dict().items(), loaded.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not a readable model file"):
        load_model(tmp_path / "junk.pt")


def test_traced_grouped_nms_keeps_what_torchvision_keeps_group_by_group() -> None:
    """The exported graph's single NMS over 2560 groups (32 blocks x 16 planes x 5 levels)."""
    g = torch.Generator().manual_seed(0)
    corner = torch.rand(6000, 2, generator=g) * 200
    boxes = torch.cat([corner, corner + torch.rand(6000, 2, generator=g) * 50 + 1], dim=1)
    scores = torch.rand(6000, generator=g)
    groups = torch.randint(0, 2560, (6000,), generator=g)
    expected = batched_nms(boxes, scores, groups, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's note on data-dependent shapes
        traced = torch.jit.trace(
            lambda b, s, k: grouped_nms(b, s, k, 0.5, 257.0), (boxes, scores, groups)
        )
    assert torch.equal(traced(boxes, scores, groups), expected)

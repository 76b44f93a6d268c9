"""Deepening a trained model: blocks appended to its stages start as the identity."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ich.model.config import ModelConfig, Stage
from ich.model.grow import GrowthError, check_growable, load_grown
from ich.model.mask_rcnn import build_mask_rcnn
from ich.preprocess import InputSpec
from ich.train.config import load_config

SMALL = load_config(Path(__file__).parents[2] / "ich" / "train" / "configs" / "tiny.yaml").model


def _deeper(config: ModelConfig, blocks: tuple[int, ...]) -> ModelConfig:
    stages = tuple(
        Stage(channels=s.channels, blocks=b)
        for s, b in zip(config.detector.stages, blocks, strict=True)
    )
    return _with(config, stages=stages)


def test_a_grown_network_computes_what_the_small_one_did_and_then_learns(
    trained_looking: Callable[[ModelConfig], torch.nn.Module],
) -> None:
    small = trained_looking(SMALL)
    large_config = _deeper(SMALL, (2, 3, 1, 2))
    large = build_mask_rcnn(large_config)
    load_grown(large, small.state_dict(), SMALL)
    large.eval()
    x = torch.rand(2, SMALL.input.channels, 64, 64)
    with torch.no_grad():
        before, after = small.backbone(x), large.backbone(x)
        detected_before = small([x[0]])[0]
        detected_after = large([x[0]])[0]
    assert before.keys() == after.keys()
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)
    torch.testing.assert_close(detected_after["scores"], detected_before["scores"])
    # The appended blocks are real parameters that take gradients.
    large.train()
    large.backbone(x)["0"].sum().backward()
    added = large.backbone.body.depth_stages[1].body[2].spatial[0].weight
    assert added.grad is not None


def _with(config: ModelConfig, **detector: object) -> ModelConfig:
    return config.model_copy(update={"detector": config.detector.model_copy(update=detector)})


DEEPER = _deeper(SMALL, (2, 2, 2, 2))


@pytest.mark.parametrize(
    ("large", "message"),
    [
        (_with(DEEPER, fpn_channels=16), "more than its blocks"),
        (
            _with(DEEPER, stages=(*DEEPER.detector.stages[:3], Stage(channels=32, blocks=2))),
            "stage 3 has 32 channels",
        ),
        (DEEPER.model_copy(update={"input": InputSpec(size=96, pixel_mm=4.0)}), "input differs"),
        (_deeper(SMALL, (2, 1, 1, 1)), None),
    ],
)
def test_growth_refuses_anything_but_appended_blocks(
    large: ModelConfig, message: str | None
) -> None:
    if message is None:  # the other way round: fewer blocks
        large, small, message = SMALL, large, "fewer than 2"
    else:
        small = SMALL
    with pytest.raises(GrowthError, match=message):
        check_growable(small, large)


def test_growth_refuses_weights_that_do_not_fit(
    trained_looking: Callable[[ModelConfig], torch.nn.Module],
) -> None:
    small = trained_looking(SMALL).state_dict()
    stem = next(k for k in small if ".stem." in k)
    del small[stem]  # a weight the grown network needs that no appended block explains
    with pytest.raises(GrowthError, match="missing"):
        load_grown(build_mask_rcnn(DEEPER), small, SMALL)

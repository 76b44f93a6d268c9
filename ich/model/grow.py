"""Deepening a trained model: more residual blocks per stage, starting as the same function.

Every :class:`~ich.model.blocks.Bottleneck` starts with its residual branch at zero, and the
block before it ends in a ReLU, so a block appended to a stage is exactly the identity until
it trains. A model grown that way from a trained shallower one computes what that one computed
and keeps all it learned; only the new blocks start untrained. This is how a larger network
can fine-tune from the synthetic-pretrained one without pretraining again.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ich.model.config import ModelConfig

_BLOCK_KEY = re.compile(
    r"^backbone\.body\.(?:depth_stages\.(\d+)\.body|flat_stages\.(\d+))\.(\d+)\."
)


class GrowthError(ValueError):
    """The larger configuration is not the smaller one with blocks appended."""


def check_growable(small: ModelConfig, large: ModelConfig) -> None:
    """``large`` must be ``small`` with zero or more blocks appended to each stage.

    Raises:
        GrowthError: anything else differs (input, channels, heads, fewer blocks).
    """
    if small.input != large.input:
        raise GrowthError("the input differs (size, spacing, slab, context or windows)")
    old, new = small.detector.stages, large.detector.stages
    for index, (a, b) in enumerate(zip(old, new, strict=True)):
        if a.channels != b.channels:
            raise GrowthError(f"stage {index} has {b.channels} channels, not {a.channels}")
        if b.blocks < a.blocks:
            raise GrowthError(f"stage {index} has {b.blocks} blocks, fewer than {a.blocks}")
    if small.detector.model_copy(update={"stages": new}) != large.detector:
        raise GrowthError("the detector differs in more than its blocks per stage")


def _added_block(key: str, small: ModelConfig) -> bool:
    """Whether ``key`` is a parameter of a block that ``small`` does not have."""
    match = _BLOCK_KEY.match(key)
    if match is None:
        return False
    depth, flat, block = match.groups()
    stage = int(depth) if depth is not None else small.detector.depth_stages + int(flat)
    return int(block) >= small.detector.stages[stage].blocks


def load_grown(network: nn.Module, weights: dict[str, torch.Tensor], small: ModelConfig) -> None:
    """Load the weights of a model of configuration ``small`` into the deeper ``network``.

    Raises:
        GrowthError: a weight is missing that is not in an appended block, or left over.
    """
    missing, unexpected = network.load_state_dict(weights, strict=False)
    foreign = [k for k in missing if not _added_block(k, small)]
    if foreign or unexpected:
        raise GrowthError(
            f"weights do not fit the grown network (missing {foreign[:3]}, left over "
            f"{unexpected[:3]})"
        )

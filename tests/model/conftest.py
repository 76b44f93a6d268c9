"""A network that looks trained, for tests that compare two ways of computing the same thing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from ich.model.config import ModelConfig
from ich.model.mask_rcnn import build_mask_rcnn


def _trained_looking(config: ModelConfig) -> torch.nn.Module:
    """Non-trivial weights and batch-norm statistics (as after training), residual branches on:
    a fresh network's zero-initialised branches would hide differences."""
    torch.manual_seed(0)
    network = build_mask_rcnn(config)
    with torch.no_grad():
        for name, p in network.named_parameters():
            if name.endswith("expand.1.weight"):
                p.fill_(1.0)  # residual branches start at zero: switch them on
    network.train()
    size = config.input.size
    for _ in range(2):
        network.backbone(torch.rand(4, config.input.channels, size, size))
    return network.eval()


@pytest.fixture
def trained_looking() -> Callable[[ModelConfig], torch.nn.Module]:
    return _trained_looking

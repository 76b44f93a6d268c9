"""The hybrid 3D/2D feature pyramid backbone of the paper.

The stem and the first ``depth_stages`` stages are 3D: they see the five neighbouring planes
together, and each stage's first block folds two of them away (z kernel 3, no z padding), so
after the last 3D stage one plane remains. Later stages, the FPN and the heads are 2D. Each 3D
stage's output reaches the FPN through a lateral that folds its remaining planes into one.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ich.model.blocks import Bottleneck
from ich.model.config import DetectorConfig


def _stage(in_channels: int, out_channels: int, blocks: int, dims: int) -> nn.Sequential:
    depth_kernel = 3 if dims == 3 else 1
    layers = [Bottleneck(in_channels, out_channels, 2, dims, depth_kernel)]
    layers += [Bottleneck(out_channels, out_channels, 1, dims) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def _planes_as_batch(x: Tensor) -> Tensor:
    """(N, C, D, h, w) -> (N x D, C, h, w)."""
    n, c, d, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(n * d, c, h, w)


class DepthStage(nn.Module):
    """A 3D stage and its lateral: (3D features for the next stage, 2D features for the FPN)."""

    def __init__(self, body: nn.Sequential, channels: int, depth_out: int) -> None:
        super().__init__()
        self.body = body
        self.fold = nn.Sequential(
            nn.Conv3d(channels, channels, (depth_out, 1, 1), bias=False),
            nn.BatchNorm3d(channels),
            nn.ReLU(),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.body(x)
        return x, self.fold(x)


class HybridBackbone(nn.Module):
    """C2..C5 as 2D maps at strides 4, 8, 16, 32, from either of two inputs:

    - stacks (N, windows x planes, H, W), one per predicted plane (training);
    - a series (1, windows, D, H, W) with its edge planes repeated ``planes // 2`` times on
      each side (inference): every 3D layer runs once over the series rather than once per
      stack, which yields the same features for its D - planes + 1 planes, since no layer
      pads in z.

    Features come plane-major: (N x planes out, C, h, w).
    """

    def __init__(self, windows: int, planes: int, config: DetectorConfig) -> None:
        super().__init__()
        self.windows = windows
        self.planes = planes
        self.stem = nn.Sequential(
            nn.Conv3d(windows, config.stem, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=False),
            nn.BatchNorm3d(config.stem),
            nn.ReLU(),
        )
        depth_stages = []
        flat_stages = []
        channels = config.stem
        depth = planes
        for index, stage in enumerate(config.stages):
            if index < config.depth_stages:
                depth -= 2
                body = _stage(channels, stage.channels, stage.blocks, dims=3)
                depth_stages.append(DepthStage(body, stage.channels, depth))
            else:
                flat_stages.append(_stage(channels, stage.channels, stage.blocks, dims=2))
            channels = stage.channels
        self.depth_stages = nn.ModuleList(depth_stages)
        self.flat_stages = nn.ModuleList(flat_stages)
        self.out_channels = [s.channels for s in config.stages]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.dim() == 4:
            n, _, height, width = x.shape
            x = x.reshape(n, self.windows, self.planes, height, width)
        x = self.stem(x)
        features: dict[str, Tensor] = {}
        level = 0
        for stage in self.depth_stages:
            x, lateral = stage(x)
            features[str(level)] = _planes_as_batch(lateral)
            level += 1
        x = _planes_as_batch(x)
        for stage in self.flat_stages:
            x = stage(x)
            features[str(level)] = x
            level += 1
        return features


class HybridFPN(nn.Module):
    """The backbone with its feature pyramid: P2..P5 plus a max-pooled P6, all 2D."""

    def __init__(self, windows: int, planes: int, config: DetectorConfig) -> None:
        super().__init__()
        self.body = HybridBackbone(windows, planes, config)
        self.fpn = FeaturePyramidNetwork(
            self.body.out_channels, config.fpn_channels, extra_blocks=LastLevelMaxPool()
        )
        self.out_channels = config.fpn_channels

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.fpn(OrderedDict(self.body(x)))

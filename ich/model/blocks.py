"""The residual bottleneck block, in 3D (across neighbouring planes) or 2D (within a plane)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (x ``depth_kernel`` in z) spatial, 1x1 expand, plus the shortcut.

    A 3D block whose ``depth_kernel`` is 3 has no padding in z: it turns ``d`` planes into
    ``d - 2``, which is how the backbone folds the five input planes into one. The shortcut
    keeps the middle planes so the sum lines up.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, dims: int, depth_kernel: int = 1
    ) -> None:
        super().__init__()
        if dims not in (2, 3) or (dims == 2 and depth_kernel != 1):
            raise ValueError("a 2D block has no depth kernel; dims is 2 or 3")
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        norm = nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d
        mid = max(8, out_channels // 4)
        if dims == 3:
            kernel, step, pad = (depth_kernel, 3, 3), (1, stride, stride), (0, 1, 1)
        else:
            kernel, step, pad = (3, 3), (stride, stride), (1, 1)
        self.reduce = nn.Sequential(conv(in_channels, mid, 1, bias=False), norm(mid), nn.ReLU())
        self.spatial = nn.Sequential(
            conv(mid, mid, kernel, stride=step, padding=pad, bias=False), norm(mid), nn.ReLU()
        )
        self.expand = nn.Sequential(conv(mid, out_channels, 1, bias=False), norm(out_channels))
        # Each residual branch starts as identity, as in "bag of tricks" ResNet training.
        nn.init.zeros_(self.expand[1].weight)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                conv(in_channels, out_channels, 1, stride=step, bias=False), norm(out_channels)
            )
        self.crop = (depth_kernel - 1) // 2

    def forward(self, x: Tensor) -> Tensor:
        out = self.expand(self.spatial(self.reduce(x)))
        if self.crop > 0:
            x = x[:, :, self.crop : x.shape[2] - self.crop]
        return torch.relu(out + self.shortcut(x))

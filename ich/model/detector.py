"""The inference module: tensors in, padded tensors out (the TorchScript and Triton contract).

Training uses torchvision's ``MaskRCNN.forward`` (losses, target handling). Inference skips its
transform, which is the identity on the model grid, and its mask pasting: masks leave as the
head's M x M probabilities with their boxes, and are sampled straight onto the volume's own
pixel grid by the postprocess, finer than pasting at model resolution first.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.image_list import ImageList

from ich.model.config import ModelConfig


class Detector(nn.Module):
    """A series (windows, N + context - 1, S, S), edge planes repeated ``context // 2`` times
    on each side -> boxes (N, K, 4), labels (N, K), scores (N, K), masks (N, K, M, M),
    counts (N) for its N planes: K detections per plane at most, zero-padded."""

    def __init__(self, network: MaskRCNN, size: int, windows: int, context: int) -> None:
        super().__init__()
        self.network = network.eval()
        self.size = size
        self.windows = windows
        self.context = context
        self.max_detections = int(network.roi_heads.detections_per_img)
        self.mask_size = 28

    @classmethod
    def for_config(cls, network: MaskRCNN, config: ModelConfig) -> Detector:
        spec = config.input
        return cls(network, spec.size, len(spec.windows), spec.context)

    def forward(self, series: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        if series.dim() != 4 or series.shape[0] != self.windows:
            raise ValueError("series must be (windows, planes, size, size) windowed planes")
        if series.shape[2] != self.size or series.shape[3] != self.size:
            raise ValueError("series must be on the model grid (size x size)")
        n = series.shape[1] - self.context + 1
        if n < 1:
            raise ValueError("series needs its edge planes repeated: context - 1 planes more")
        sizes = [(self.size, self.size) for _ in range(n)]
        features = self.network.backbone(series.unsqueeze(0))
        proposals, _ = self.network.rpn(ImageList(series, sizes), features)
        found, _ = self.network.roi_heads(features, proposals, sizes)
        k, m = self.max_detections, self.mask_size
        boxes = series.new_zeros((n, k, 4))
        labels = torch.zeros((n, k), dtype=torch.int64, device=series.device)
        scores = series.new_zeros((n, k))
        masks = series.new_zeros((n, k, m, m))
        counts = torch.zeros((n,), dtype=torch.int64, device=series.device)
        for i, plane in enumerate(found):
            count = plane["boxes"].shape[0]
            counts[i] = count
            boxes[i, :count] = plane["boxes"]
            labels[i, :count] = plane["labels"]
            scores[i, :count] = plane["scores"]
            masks[i, :count] = plane["masks"][:, 0]
        return boxes, labels, scores, masks, counts

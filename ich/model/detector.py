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


class Detector(nn.Module):
    """(N, C, S, S) stacks -> boxes (N, K, 4), labels (N, K), scores (N, K),
    masks (N, K, M, M), counts (N): K detections per plane at most, zero-padded."""

    def __init__(self, network: MaskRCNN, size: int, channels: int) -> None:
        super().__init__()
        self.network = network.eval()
        self.size = size
        self.channels = channels
        self.max_detections = int(network.roi_heads.detections_per_img)
        self.mask_size = 28

    def forward(self, stacks: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        if stacks.dim() != 4 or stacks.shape[1] != self.channels:
            raise ValueError("stacks must be (N, channels, size, size) windowed planes")
        if stacks.shape[2] != self.size or stacks.shape[3] != self.size:
            raise ValueError("stacks must be on the model grid (size x size)")
        n = stacks.shape[0]
        sizes = [(self.size, self.size) for _ in range(n)]
        features = self.network.backbone(stacks)
        proposals, _ = self.network.rpn(ImageList(stacks, sizes), features)
        found, _ = self.network.roi_heads(features, proposals, sizes)
        k, m = self.max_detections, self.mask_size
        boxes = stacks.new_zeros((n, k, 4))
        labels = torch.zeros((n, k), dtype=torch.int64, device=stacks.device)
        scores = stacks.new_zeros((n, k))
        masks = stacks.new_zeros((n, k, m, m))
        counts = torch.zeros((n,), dtype=torch.int64, device=stacks.device)
        for i, plane in enumerate(found):
            count = plane["boxes"].shape[0]
            counts[i] = count
            boxes[i, :count] = plane["boxes"]
            labels[i, :count] = plane["labels"]
            scores[i, :count] = plane["scores"]
            masks[i, :count] = plane["masks"][:, 0]
        return boxes, labels, scores, masks, counts

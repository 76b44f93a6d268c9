"""The inference module: tensors in, padded tensors out (the TorchScript, ONNX and Triton contract).

Training uses torchvision's ``MaskRCNN.forward`` (losses, target handling). Inference skips its
transform, which is the identity on the model grid, and its mask pasting: masks leave as the
head's M x M probabilities with their boxes, and are sampled straight onto the volume's own
pixel grid by the postprocess, finer than pasting at model resolution first. The heads run on
every plane at once (:mod:`ich.model.batched_mask_rcnn`), so the batch size stays dynamic in ONNX.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.detection import MaskRCNN

from ich.model.batched_mask_rcnn import BatchedMaskRCNN
from ich.model.config import ModelConfig


class Detector(nn.Module):
    """Blocks (B, windows, P + context - 1, S, S) of P contiguous model planes, each with its
    ``context // 2`` neighbours on either side -> boxes (B, P, K, 4), labels (B, P, K),
    scores (B, P, K), masks (B, P, K, M, M) and counts (B, P), in the order of
    :data:`ich.model.contract.DETECTOR_OUTPUTS`: K detections per plane at most, zero-padded.
    A block with P = 1 is one 5-plane stack; longer blocks share the 3D work of
    overlapping stacks (:func:`ich.preprocess.blocks`)."""

    def __init__(self, network: MaskRCNN, size: int, windows: int, context: int) -> None:
        super().__init__()
        network = network.eval()
        self.backbone = network.backbone
        self.size = size
        self.windows = windows
        self.context = context
        with torch.no_grad():
            probe = self.backbone(torch.zeros(1, windows, context, size, size))
        self.heads = BatchedMaskRCNN(network, size, [f.shape[-1] for f in probe.values()])
        self.max_detections = self.heads.detections
        self.mask_size = self.heads.mask_side

    @classmethod
    def for_config(cls, network: MaskRCNN, config: ModelConfig) -> Detector:
        spec = config.input
        return cls(network, spec.size, len(spec.windows), spec.context)

    def forward(self, blocks: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        if blocks.dim() != 5 or blocks.shape[1] != self.windows:
            raise ValueError("blocks must be (blocks, windows, planes, size, size) windowed planes")
        if blocks.shape[3] != self.size or blocks.shape[4] != self.size:
            raise ValueError("blocks must be on the model grid (size x size)")
        if blocks.shape[2] < self.context:
            raise ValueError("a block needs its context: context - 1 planes more than it predicts")
        per_block = blocks.shape[2] - self.context + 1
        boxes, labels, scores, masks, counts = self.heads(list(self.backbone(blocks).values()))
        k, m = boxes.shape[1], masks.shape[-1]
        return (
            boxes.reshape(-1, per_block, k, 4),
            labels.reshape(-1, per_block, k),
            scores.reshape(-1, per_block, k),
            masks.reshape(-1, per_block, k, m, m),
            counts.reshape(-1, per_block),
        )

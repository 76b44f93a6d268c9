"""Mask R-CNN inference over many planes at once, without a loop over planes.

torchvision's RPN and ROI heads filter, suppress and cap detections image by image in Python
loops. Traced for ONNX those loops unroll to the example's plane count, and in TorchScript
they cost a dispatch per plane. Here the same trained modules run on every plane together:
candidates of all planes are suppressed together, keyed by plane and level or plane and
class (:func:`grouped_nms`), and each plane's best ``n`` are picked with one ``topk`` over a
dense (planes, candidates) score table. Results are padded to fixed sizes with a validity
mask, which is also the TorchScript, ONNX and TensorRT contract.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.rpn import concat_box_prediction_layers
from torchvision.ops import batched_nms, clip_boxes_to_image, nms, roi_align
from torchvision.ops.poolers import LevelMapper


def _large_enough(boxes: Tensor, min_size: float) -> Tensor:
    width = boxes[..., 2] - boxes[..., 0]
    height = boxes[..., 3] - boxes[..., 1]
    return (width >= min_size) & (height >= min_size)


class BatchedMaskRCNN(nn.Module):
    """The inference path of a trained :class:`MaskRCNN` on (planes, C, h, w) features.

    Matches torchvision's ``rpn`` + ``roi_heads`` in eval mode plane by plane (detections in
    the same order, up to ties), returning padded (planes, K, ...) tensors and a count.
    """

    def __init__(self, network: MaskRCNN, size: int, feature_sizes: list[int]) -> None:
        super().__init__()
        rpn, heads = network.rpn, network.roi_heads
        self.size = size
        self.rpn_head = rpn.head
        self.rpn_coder = rpn.box_coder
        self.rpn_min_size = float(rpn.min_size)
        self.rpn_score = float(rpn.score_thresh)
        self.rpn_nms = float(rpn.nms_thresh)
        per_location = rpn.anchor_generator.num_anchors_per_location()
        sizes = zip(per_location, feature_sizes, strict=True)
        self.anchors_per_level = [n * s * s for n, s in sizes]
        pre_nms = int(rpn._pre_nms_top_n["testing"])
        self.top_per_level = [min(pre_nms, n) for n in self.anchors_per_level]
        self.proposals = min(int(rpn._post_nms_top_n["testing"]), sum(self.top_per_level))
        self.register_buffer("anchors", _anchors(network, size, feature_sizes), persistent=False)
        levels = [torch.full((k,), i) for i, k in enumerate(self.top_per_level)]
        self.register_buffer("proposal_levels", torch.cat(levels), persistent=False)

        self.box_head = heads.box_head
        self.box_predictor = heads.box_predictor
        self.box_coder = heads.box_coder
        self.score_thresh = float(heads.score_thresh)
        self.nms_iou = float(heads.nms_thresh)
        self.classes = int(heads.box_predictor.cls_score.out_features)
        self.detections = min(int(heads.detections_per_img), self.proposals * (self.classes - 1))
        self.mask_head = heads.mask_head
        self.mask_predictor = heads.mask_predictor
        for pool in (heads.box_roi_pool, heads.mask_roi_pool):
            if list(pool.featmap_names) != [str(i) for i in range(len(pool.featmap_names))]:
                raise ValueError("RoI pools must read the leading FPN levels '0', '1', ...")
        pooled = len(heads.box_roi_pool.featmap_names)
        if len(heads.mask_roi_pool.featmap_names) != pooled:
            raise ValueError("the box and mask RoI pools must read the same FPN levels")
        self.pooled_levels = pooled
        self.scales = [2.0 ** round(math.log2(s / size)) for s in feature_sizes[:pooled]]
        self.mapper = LevelMapper(int(-math.log2(self.scales[0])), int(-math.log2(self.scales[-1])))
        self.box_pool = _pool_shape(heads.box_roi_pool)
        self.mask_pool = _pool_shape(heads.mask_roi_pool)
        self.mask_side = 2 * self.mask_pool[0]
        """The mask predictor upsamples its RoI features twice (torchvision's MaskRCNNPredictor)."""

    def forward(self, features: list[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        proposals, proposal_ok = self._propose(features)
        return self._detect(features, proposals, proposal_ok)

    def _propose(self, features: list[Tensor]) -> tuple[Tensor, Tensor]:
        """(planes, R, 4) proposals and their validity, as torchvision's RPN in eval mode."""
        planes = features[0].shape[0]
        objectness, regression = concat_box_prediction_layers(*self.rpn_head(features))
        objectness = objectness.reshape(planes, -1)
        regression = regression.reshape(planes, -1, 4)
        # Best anchors of each level, then the sigmoid, as torchvision orders them.
        picked = []
        offset = 0
        for level in range(len(self.top_per_level)):
            n, k = self.anchors_per_level[level], self.top_per_level[level]
            picked.append(objectness[:, offset : offset + n].topk(k, dim=1)[1] + offset)
            offset += n
        index = torch.cat(picked, dim=1)
        scores = torch.sigmoid(objectness.gather(1, index))
        # Constants follow the input: a frozen file may be loaded onto another device.
        anchors = self.anchors.to(objectness.device)[index.reshape(-1)]
        codes = regression.gather(1, index[..., None].expand(-1, -1, 4)).reshape(-1, 4)
        boxes = self.rpn_coder.decode_single(codes, anchors)
        boxes = clip_boxes_to_image(boxes, (self.size, self.size)).reshape(planes, -1, 4)
        valid = _large_enough(boxes, self.rpn_min_size) & (scores >= self.rpn_score)
        candidates = index.shape[1]
        levels = len(self.top_per_level)
        groups = self._plane_ids(scores, candidates) * levels + self.proposal_levels.to(
            scores.device
        )
        top, position = self._best(boxes, scores, valid, groups, self.rpn_nms, self.proposals)
        chosen = boxes.gather(1, position[..., None].expand(-1, -1, 4))
        return chosen, top >= 0.0

    def _detect(
        self, features: list[Tensor], proposals: Tensor, proposal_ok: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        planes, count = proposals.shape[0], proposals.shape[1]
        pooled = self._pool(features, self._rois(proposals), self.box_pool)
        logits, regression = self.box_predictor(self.box_head(pooled))
        classes = self.classes
        boxes = self.box_coder.decode_single(regression, proposals.reshape(-1, 4))
        boxes = clip_boxes_to_image(
            boxes.reshape(planes, count, classes, 4)[:, :, 1:], (self.size, self.size)
        )
        scores = torch.softmax(logits, -1).reshape(planes, count, classes)[:, :, 1:]
        valid = (scores > self.score_thresh) & _large_enough(boxes, 1e-2) & proposal_ok[..., None]
        boxes = boxes.reshape(planes, -1, 4)
        scores = scores.reshape(planes, -1)
        candidate_class = torch.arange(classes - 1, device=scores.device).repeat(count)
        groups = self._plane_ids(scores, scores.shape[1]) * classes + candidate_class
        top, position = self._best(
            boxes, scores, valid.reshape(planes, -1), groups, self.nms_iou, self.detections
        )
        found = top >= 0.0
        labels = (position % (classes - 1) + 1) * found
        boxes = boxes.gather(1, position[..., None].expand(-1, -1, 4)) * found[..., None]
        scores = top * found
        masks = self._masks(features, boxes, labels, found)
        return boxes, labels, scores, masks, found.sum(dim=1)

    def _masks(
        self, features: list[Tensor], boxes: Tensor, labels: Tensor, found: Tensor
    ) -> Tensor:
        """(planes, K, side, side) mask probabilities, computed for real detections only (a
        plane holds a few of its K slots), zero elsewhere."""
        planes, slots = boxes.shape[0], boxes.shape[1]
        real = torch.where(found.reshape(-1))[0]
        rois = self._rois(boxes)[real]
        logits = self.mask_predictor(self.mask_head(self._pool(features, rois, self.mask_pool)))
        side = self.mask_side
        index = labels.reshape(-1)[real].reshape(-1, 1, 1, 1).expand(-1, 1, side, side)
        chosen = torch.sigmoid(logits.gather(1, index))[:, 0]
        masks = boxes.new_zeros((planes * slots, side, side)).index_put((real,), chosen)
        return masks.reshape(planes, slots, side, side)

    def _pool(self, features: list[Tensor], rois: Tensor, shape: tuple[int, int]) -> Tensor:
        """RoIAlign of (N, 5) rois (plane, x1, y1, x2, y2) on the level each one's size maps
        to, as torchvision's MultiScaleRoIAlign with the plane as the batch index. ``shape``
        is (output side, sampling ratio)."""
        output, sampling = shape
        levels = self.mapper([rois[:, 1:]])
        out = rois.new_zeros((rois.shape[0], features[0].shape[1], output, output))
        for level in range(self.pooled_levels):
            where = torch.where(levels == level)[0]
            pooled = roi_align(
                features[level], rois[where], (output, output), self.scales[level], sampling, False
            )
            out = out.index_put((where,), pooled)
        return out

    def _rois(self, boxes: Tensor) -> Tensor:
        """(planes x R, 5) rois of (planes, R, 4) boxes."""
        plane = self._plane_ids(boxes, boxes.shape[1]).reshape(-1, 1).to(boxes.dtype)
        return torch.cat([plane, boxes.reshape(-1, 4)], dim=1)

    def _plane_ids(self, like: Tensor, count: int) -> Tensor:
        """int64 (planes, count): each slot's plane, for ``like`` (planes, ...)."""
        planes = like.shape[0]
        ids = torch.arange(planes, device=like.device)
        return ids[:, None].expand(planes, count)

    def _best(
        self, boxes: Tensor, scores: Tensor, valid: Tensor, groups: Tensor, iou: float, keep: int
    ) -> tuple[Tensor, Tensor]:
        """(scores, positions), (planes, keep): each plane's best candidates left after NMS
        within each ``groups`` value; empty slots score -1."""
        planes, candidates = scores.shape[0], scores.shape[1]
        chosen = torch.where(valid.reshape(-1))[0]
        kept = chosen[
            grouped_nms(
                boxes.reshape(-1, 4)[chosen],
                scores.reshape(-1)[chosen],
                groups.reshape(-1)[chosen],
                iou,
                float(self.size + 1),
            )
        ]
        table = torch.full_like(scores.reshape(-1), -1.0)  # empty: below any probability
        table = table.index_put((kept,), scores.reshape(-1)[kept])
        return table.reshape(planes, candidates).topk(keep, dim=1)


def grouped_nms(
    boxes: Tensor, scores: Tensor, groups: Tensor, iou: float, span: float, tiles: int = 64
) -> Tensor:
    """Indices kept by NMS within each group, best first (torchvision's ``batched_nms``).

    Traced (ONNX, TensorRT) it is one NMS with the groups moved apart: torchvision shifts
    group ``g`` by ``g x span`` along one axis, which for 32 blocks of 16 planes and 5 levels
    reaches 658k pixels, where float32 steps are 0.06 px; a 2D grid of tiles keeps shifts near
    16k (steps 0.002 px), ``tiles`` groups a row. Otherwise torchvision decides: on the CPU it
    loops over the groups, which is faster there than one NMS over every candidate. ``span``
    exceeds any box coordinate.
    """
    if torch.jit.is_tracing():
        column = (groups % tiles).to(boxes.dtype) * span
        row = torch.div(groups, tiles, rounding_mode="floor").to(boxes.dtype) * span
        shift = torch.stack((column, row, column, row), dim=1)
        return nms(boxes + shift, scores, iou)
    return batched_nms(boxes, scores, groups, iou)


def _pool_shape(pool: nn.Module) -> tuple[int, int]:
    """(output side, sampling ratio) of a MultiScaleRoIAlign."""
    return int(pool.output_size[0]), int(pool.sampling_ratio)


def _anchors(network: MaskRCNN, size: int, feature_sizes: list[int]) -> Tensor:
    """(A, 4) anchors of one model plane, in torchvision's order (the same for every plane)."""
    from torchvision.models.detection.image_list import ImageList

    generator = network.rpn.anchor_generator
    image = torch.zeros(1, 1, size, size)
    maps = [torch.zeros(1, 1, s, s) for s in feature_sizes]
    return generator(ImageList(image, [(size, size)]), maps)[0]

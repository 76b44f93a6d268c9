"""Mask R-CNN assembled from torchvision's components around the hybrid backbone."""

from __future__ import annotations

from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign

from ich.model.backbone import HybridFPN
from ich.model.config import ModelConfig

NUM_CLASSES = 4
"""Background, IPH, EDH/SDH, SAH: label ``c`` is :attr:`HemorrhageClass.label` ``c``."""
_LEVELS = ["0", "1", "2", "3"]


def build_mask_rcnn(config: ModelConfig) -> MaskRCNN:
    """The network, untrained. Its inputs are already windowed stacks in [0, 1] on the model
    grid, so the torchvision transform neither normalises nor resizes them."""
    spec, det = config.input, config.detector
    backbone = HybridFPN(len(spec.windows), spec.context, det)
    anchors = AnchorGenerator(
        sizes=det.anchor_sizes, aspect_ratios=(det.aspect_ratios,) * len(det.anchor_sizes)
    )
    rpn_head = RPNHead(backbone.out_channels, anchors.num_anchors_per_location()[0])
    box_pool = MultiScaleRoIAlign(_LEVELS, output_size=7, sampling_ratio=2)
    mask_pool = MultiScaleRoIAlign(_LEVELS, output_size=14, sampling_ratio=2)
    width = det.fpn_channels
    return MaskRCNN(
        backbone,
        num_classes=None,
        min_size=spec.size,
        max_size=spec.size,
        image_mean=[0.0] * spec.channels,
        image_std=[1.0] * spec.channels,
        rpn_anchor_generator=anchors,
        rpn_head=rpn_head,
        rpn_pre_nms_top_n_train=det.rpn_pre_nms_train,
        rpn_post_nms_top_n_train=det.rpn_post_nms_train,
        rpn_pre_nms_top_n_test=det.rpn_pre_nms_test,
        rpn_post_nms_top_n_test=det.rpn_post_nms_test,
        box_roi_pool=box_pool,
        box_head=TwoMLPHead(width * 7 * 7, det.representation),
        box_predictor=FastRCNNPredictor(det.representation, NUM_CLASSES),
        box_score_thresh=det.min_score,
        box_nms_thresh=det.nms_iou,
        box_detections_per_img=det.detections_per_plane,
        box_batch_size_per_image=det.box_batch_per_image,
        mask_roi_pool=mask_pool,
        mask_head=MaskRCNNHeads(width, list(det.mask_layers), 1),
        mask_predictor=MaskRCNNPredictor(det.mask_layers[-1], det.mask_layers[-1], NUM_CLASSES),
    )

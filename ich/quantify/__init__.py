"""Quantification: 3D hemorrhage instances, volumes, ABC/2 and exam-level results.

numpy and scipy only, so the same code runs in ``ich analyze``, in the Triton python backend
and in the gateway.
"""

from ich.quantify.exam import exam_result
from ich.quantify.instances import Detection, instances_from_detections, instances_from_labels
from ich.quantify.measure import MeasurementGrid, abc2_ml, measure
from ich.quantify.rle import decode_label_volume, decode_rle, encode_label_volume, encode_rle
from ich.quantify.strata import stratum_of

__all__ = [
    "Detection",
    "MeasurementGrid",
    "abc2_ml",
    "decode_label_volume",
    "decode_rle",
    "encode_label_volume",
    "encode_rle",
    "exam_result",
    "instances_from_detections",
    "instances_from_labels",
    "measure",
    "stratum_of",
]

"""The analysis around the detector: volume -> model input, detector outputs -> exam result.

Torch-free, so the Triton preprocess and postprocess steps, ``ich analyze`` and evaluation run
the very same code on either side of the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ich.dicom.volume import Volume
from ich.preprocess import InputSpec, ModelGrid, model_input
from ich.preprocess.outputs import DetectorOutputs, detections_on_volume
from ich.quantify import Geometry, instances_from_labels
from ich.quantify.exam import exam_result
from ich.quantify.instances import paint_detections
from ich.schema import ExamResult, OperatingPoint


@dataclass(frozen=True)
class Prepared:
    """A volume ready for the detector."""

    grid: ModelGrid
    series: np.ndarray
    """float32 (windows, planes + context - 1, size, size), see :func:`model_input`."""


def prepare(volume: Volume, spec: InputSpec) -> Prepared:
    grid = ModelGrid.fit(volume.hu, volume.spacing_mm, spec)
    return Prepared(grid, model_input(grid.hu_planes(volume.hu), spec))


def finish(
    volume: Volume,
    grid: ModelGrid,
    outputs: DetectorOutputs,
    operating_point: OperatingPoint,
    masks: bool = True,
    label_volume: bool = False,
) -> tuple[ExamResult, np.ndarray]:
    """The exam result and its label volume (reported hemorrhages only) on ``volume``'s grid."""
    label, score = paint_detections(detections_on_volume(grid, outputs), volume.shape)
    instances = instances_from_labels(label, score)
    thresholds = operating_point.thresholds
    reported = np.zeros(volume.shape, dtype=np.uint8)
    for instance in instances:
        if instance.score >= thresholds[instance.hemorrhage_class]:
            reported[instance.region][instance.mask] = instance.hemorrhage_class.label
    result = exam_result(
        volume.study_uid,
        volume.series_uid,
        instances,
        Geometry.of(volume),
        operating_point,
        warnings=volume.warnings,
        masks=masks,
        label_volume=reported if label_volume else None,
    )
    return result, reported

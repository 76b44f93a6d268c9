"""Exam-level result: per-class probability and flag, totals, and the instances."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ich.quantify.instances import Instance
from ich.quantify.measure import MeasurementGrid, measure, slice_detections
from ich.quantify.rle import encode_label_volume
from ich.schema import (
    ClassFinding,
    ExamResult,
    HemorrhageClass,
    IngestionWarning,
    OperatingPoint,
)


def exam_result(
    study_uid: str,
    series_uid: str,
    instances: Sequence[Instance],
    geometry: MeasurementGrid,
    operating_point: OperatingPoint,
    probabilities: dict[HemorrhageClass, float] | None = None,
    warnings: Sequence[IngestionWarning] = (),
    masks: bool = True,
    label_volume: np.ndarray | None = None,
) -> ExamResult:
    """Measure the instances that pass their class threshold and summarise the exam.

    A class's probability is given by the model's exam-level head when it has one
    (``probabilities``), else the highest score among the class's instances (0 without any);
    "any ICH" takes the highest class probability. Probabilities are rounded once, then
    compared with the operating point's thresholds. Instances scoring under their class
    threshold are not reported (nor counted in the volumes), so a volume never comes without
    its flag.
    """
    kept = [i for i in instances if operating_point.reports(i.hemorrhage_class, i.score)]
    hemorrhages = [measure(i, geometry, n, masks) for n, i in enumerate(kept, start=1)]
    detections = [d for n, i in enumerate(kept, start=1) for d in slice_detections(i, geometry, n)]
    findings = []
    for hemorrhage_class in HemorrhageClass:
        mine = [h for h in hemorrhages if h.hemorrhage_class is hemorrhage_class]
        scores = [i.score for i in instances if i.hemorrhage_class is hemorrhage_class]
        probability = round(
            (probabilities or {}).get(hemorrhage_class, max(scores, default=0.0)), 4
        )
        findings.append(
            ClassFinding(
                hemorrhage_class=hemorrhage_class,
                probability=probability,
                flagged=operating_point.reports(hemorrhage_class, probability),
                threshold=operating_point.thresholds[hemorrhage_class],
                count=len(mine),
                total_volume_ml=round(sum(h.volume_ml for h in mine), 4),
            )
        )
    any_probability = max(f.probability for f in findings)
    return ExamResult(
        study_uid=study_uid,
        series_uid=series_uid,
        any_ich_probability=any_probability,
        any_ich_flagged=any_probability >= operating_point.any_ich,
        any_ich_threshold=operating_point.any_ich,
        classes=findings,
        hemorrhages=hemorrhages,
        detections=sorted(detections, key=lambda d: (d.index, d.hemorrhage_id)),
        shape=geometry.shape,
        spacing_mm=geometry.spacing_mm,
        operating_point=operating_point,
        label_volume=None if label_volume is None else encode_label_volume(label_volume),
        warnings=list(warnings),
    )

"""Exam-level result: per-class probability and flag, totals, and the instances."""

from __future__ import annotations

from collections.abc import Sequence

from ich.quantify.instances import Instance
from ich.quantify.measure import Geometry, measure
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
    geometry: Geometry,
    operating_point: OperatingPoint,
    probabilities: dict[HemorrhageClass, float] | None = None,
    warnings: Sequence[IngestionWarning] = (),
    masks: bool = True,
) -> ExamResult:
    """Measure every instance and summarise the exam.

    A class's probability is given by the model's exam-level head when it has one
    (``probabilities``), else the highest score among the class's instances (0 without any);
    "any ICH" takes the highest class probability. Flags compare them with the operating
    point's thresholds.
    """
    hemorrhages = [measure(i, geometry, n, masks) for n, i in enumerate(instances, start=1)]
    findings = []
    for hemorrhage_class in HemorrhageClass:
        mine = [h for h in hemorrhages if h.hemorrhage_class is hemorrhage_class]
        probability = (probabilities or {}).get(
            hemorrhage_class, max((h.score for h in mine), default=0.0)
        )
        threshold = operating_point.thresholds[hemorrhage_class]
        findings.append(
            ClassFinding(
                hemorrhage_class=hemorrhage_class,
                probability=round(probability, 4),
                flagged=probability >= threshold,
                threshold=threshold,
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
        shape=geometry.shape,
        spacing_mm=geometry.spacing_mm,
        warnings=list(warnings),
    )

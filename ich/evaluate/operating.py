"""Choosing the operating point (the exam-level thresholds) on validation outcomes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from ich.errors import IchError
from ich.evaluate.runner import ExamOutcome
from ich.schema import HemorrhageClass, OperatingPoint

_LOWEST, _HIGHEST = 0.05, 0.99


def threshold_at_specificity(
    positive: np.ndarray, negative: np.ndarray, min_specificity: float
) -> float:
    """The lowest threshold (score >= threshold flags) whose specificity on ``negative`` is at
    least ``min_specificity``: the most sensitive one that keeps it. Clamped to [0.05, 0.99]."""
    if len(negative) == 0:
        low = float(np.min(positive)) if len(positive) else 0.5
        return float(np.clip(low, _LOWEST, _HIGHEST))
    allowed = math.floor((1.0 - min_specificity) * len(negative) + 1e-9)
    ranked = np.sort(negative)[::-1]
    if allowed >= len(ranked):
        return _LOWEST
    # Just above the highest negative that must not be flagged.
    return float(np.clip(np.nextafter(ranked[allowed], np.inf) + 1e-4, _LOWEST, _HIGHEST))


def choose_operating_point(
    outcomes: list[ExamOutcome], min_specificity: float, data: str
) -> OperatingPoint:
    """Per class (its exams against the bleed-free ones) and for any ICH.

    The any-ICH threshold is never above a class's: a study with a class flagged is always
    flagged as "any ICH" too, which is what a triage list sorts on.
    """
    clean = np.array([o.any_probability for o in outcomes if not o.positive()])
    thresholds = {}
    for c in HemorrhageClass:
        positive = np.array([o.probability[c] for o in outcomes if o.positive(c)])
        negative = np.array([o.probability[c] for o in outcomes if not o.positive()])
        thresholds[c] = round(threshold_at_specificity(positive, negative, min_specificity), 4)
    positive_any = np.array([o.any_probability for o in outcomes if o.positive()])
    any_ich = round(threshold_at_specificity(positive_any, clean, min_specificity), 4)
    any_ich = min(any_ich, *thresholds.values())
    return OperatingPoint(
        thresholds=thresholds,
        any_ich=any_ich,
        source=f"most sensitive with specificity >= {min_specificity} on {data} "
        f"({len(outcomes)} exams, {len(clean)} without blood)",
    )


def read_operating_point(path: Path) -> OperatingPoint:
    """An operating point written as JSON (``ich train --folds`` writes one).

    Raises:
        IchError: the file is missing or is not an operating point.
    """
    try:
        return OperatingPoint.model_validate_json(path.read_text())
    except OSError as error:
        raise IchError(f"cannot read the operating point {path}: {error.strerror}") from error
    except ValidationError as error:
        raise IchError(f"{path} is not an operating point: {error.errors()[0]['msg']}") from error

"""The paper's metrics, computed with numpy only and checked against hand values in tests.

Exam detection (accuracy, AUC, sensitivity, specificity, PPV, NPV), segmentation (Dice) and
volume agreement (Pearson r, mean bias in percent, Bland-Altman limits), each with a
percentile bootstrap interval over exams.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A point estimate and its 95% bootstrap interval (NaN where undefined)."""

    value: float
    low: float
    high: float


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def confusion(truth: np.ndarray, flagged: np.ndarray) -> tuple[int, int, int, int]:
    """(true positives, false positives, true negatives, false negatives)."""
    truth, flagged = np.asarray(truth, bool), np.asarray(flagged, bool)
    return (
        int((truth & flagged).sum()),
        int((~truth & flagged).sum()),
        int((~truth & ~flagged).sum()),
        int((truth & ~flagged).sum()),
    )


def roc_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the Mann-Whitney probability that a positive outscores a
    negative, ties counting one half. NaN when either class is absent."""
    truth, scores = np.asarray(truth, bool), np.asarray(scores, float)
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite to rank them")
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if not positives or not negatives:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first, counts, strict=True):
        ranks[order[start : start + count]] = start + (count + 1) / 2
    u = ranks[truth].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def roc_curve(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, threshold) from the strictest threshold down."""
    truth, scores = np.asarray(truth, bool), np.asarray(scores, float)
    thresholds = np.concatenate([[np.inf], np.unique(scores)[::-1]])
    tpr = np.array([(scores[truth] >= t).mean() if truth.any() else np.nan for t in thresholds])
    fpr = np.array([(scores[~truth] >= t).mean() if (~truth).any() else np.nan for t in thresholds])
    return fpr, tpr, thresholds


def detection(truth: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Exam-level detection figures at ``threshold`` (flag when score >= threshold)."""
    tp, fp, tn, fn = confusion(truth, np.asarray(scores) >= threshold)
    return {
        "accuracy": _ratio(tp + tn, tp + fp + tn + fn),
        "auc": roc_auc(truth, scores),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
    }


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """2|A and B| / (|A| + |B|); NaN when both are empty (nothing to agree on)."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    total = int(predicted.sum() + truth.sum())
    return _ratio(2 * int((predicted & truth).sum()), total)


def pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def volume_agreement(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Pearson r, mean bias in percent of the true volume (the paper's -2.1% / +20.2%), and
    Bland-Altman mean difference with its 95% limits of agreement, in mL."""
    predicted, truth = np.asarray(predicted, float), np.asarray(truth, float)
    difference = predicted - truth
    positive = truth > 0
    spread = 1.96 * difference.std(ddof=1) if len(difference) > 1 else float("nan")
    mean = float(difference.mean()) if len(difference) else float("nan")
    return {
        "pearson_r": pearson_r(predicted, truth),
        "pooled_bias_percent": float(100 * difference.sum() / truth.sum())
        if truth.sum() > 0
        else float("nan"),
        "bias_percent": float(100 * (difference[positive] / truth[positive]).mean())
        if positive.any()
        else float("nan"),
        "bland_altman_mean_ml": mean,
        "bland_altman_low_ml": mean - spread,
        "bland_altman_high_ml": mean + spread,
    }


def balanced_detection(truth: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Detection figures as if positives and negatives were equally common (Table 2).

    Sensitivity, specificity and AUC do not depend on prevalence; accuracy, PPV and NPV are
    recomputed at 50%: the paper's balanced rows keep the full set's specificity in every
    stratum, which only re-weighting (not subsampling) the negatives does.
    """
    full = detection(truth, scores, threshold)
    sens, spec = full["sensitivity"], full["specificity"]
    return {
        "accuracy": (sens + spec) / 2,
        "auc": full["auc"],
        "sensitivity": sens,
        "specificity": spec,
        "ppv": _ratio(sens, sens + 1 - spec),
        "npv": _ratio(spec, spec + 1 - sens),
    }


def bootstrap(
    statistic: Callable[..., float],
    *columns: np.ndarray,
    resamples: int = 1000,
    seed: int = 0,
    strata: np.ndarray | None = None,
) -> Interval:
    """``statistic(*columns)`` and its 95% percentile interval over exams resampled with
    replacement (columns are resampled together, row by row); all NaN without rows.

    ``strata`` (e.g. the truth column) resamples each group separately, so every draw keeps
    the positives and negatives it needs: with few positives a plain resample would often
    draw none and silently narrow the interval.
    """
    size = len(columns[0])
    if size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    value = float(statistic(*columns))
    if size < 2:
        return Interval(value, float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    draws = []
    groups = (
        [np.arange(size)]
        if strata is None
        else [np.flatnonzero(np.asarray(strata) == value) for value in np.unique(strata)]
    )
    for _ in range(resamples):
        pick = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
        draws.append(statistic(*(np.asarray(c)[pick] for c in columns)))
    finite = np.asarray(draws, float)
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return Interval(value, float("nan"), float("nan"))
    low, high = np.percentile(finite, [2.5, 97.5])
    return Interval(value, float(low), float(high))

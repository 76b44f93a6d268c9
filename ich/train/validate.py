"""Periodic validation: the whole inference pipeline on held-apart studies."""

from __future__ import annotations

import math

import numpy as np

from ich.evaluate.cases import LabelledCase
from ich.evaluate.metrics import roc_auc
from ich.evaluate.runner import ExamOutcome, run
from ich.model.analyzer import Analyzer
from ich.model.checkpoint import untuned_operating_point
from ich.model.config import ModelConfig
from ich.model.detector import Detector
from ich.schema import HemorrhageClass


def validation_outcomes(
    detector: Detector, config: ModelConfig, cases: list[LabelledCase]
) -> list[ExamOutcome]:
    """Each case through preprocessing, the detector and postprocessing, as served."""
    analyzer = Analyzer.from_network(detector.eval(), config, untuned_operating_point())
    return run(cases, analyzer)


def validation_metrics(outcomes: list[ExamOutcome]) -> dict[str, float]:
    """Exam AUC (any ICH, per class) and mean Dice per class; ``score`` ranks checkpoints."""
    truth = np.array([o.positive() for o in outcomes])
    metrics: dict[str, float] = {}
    metrics["auc_any"] = _auc(truth, np.array([o.any_probability for o in outcomes]))
    dices = []
    for c in HemorrhageClass:
        rows = [o for o in outcomes if o.positive(c) or not o.positive()]
        metrics[f"auc_{c.name.lower()}"] = _auc(
            np.array([o.positive(c) for o in rows]), np.array([o.probability[c] for o in rows])
        )
        values = [o.dice[c] for o in outcomes if o.positive(c)]
        metrics[f"dice_{c.name.lower()}"] = float(np.nanmean(values)) if values else math.nan
        dices.append(metrics[f"dice_{c.name.lower()}"])
    finite = [v for v in [metrics["auc_any"], *dices] if not math.isnan(v)]
    metrics["score"] = float(np.mean(finite)) if finite else 0.0
    return metrics


def _auc(truth: np.ndarray, scores: np.ndarray) -> float:
    return roc_auc(truth, scores) if 0 < truth.sum() < len(truth) else math.nan

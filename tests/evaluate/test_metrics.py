"""The evaluation metrics against hand-computed values and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ich.evaluate.metrics import (
    balanced_detection,
    bootstrap,
    confusion,
    detection,
    dice,
    pearson_r,
    roc_auc,
    roc_curve,
    volume_agreement,
)


def test_detection_figures_by_hand() -> None:
    truth = np.array([1, 1, 1, 0, 0, 0, 0, 1], bool)
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1, 0.4, 0.6])
    assert confusion(truth, scores >= 0.5) == (3, 1, 3, 1)
    figures = detection(truth, scores, threshold=0.5)
    assert figures["accuracy"] == pytest.approx(6 / 8)
    assert figures["sensitivity"] == pytest.approx(3 / 4)
    assert figures["specificity"] == pytest.approx(3 / 4)
    assert figures["ppv"] == pytest.approx(3 / 4)
    assert figures["npv"] == pytest.approx(3 / 4)
    # Pairs (positive, negative) where the positive scores higher: 13 of 16.
    assert figures["auc"] == pytest.approx(13 / 16)


def test_auc_matches_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(1)
    truth = rng.random(300) < 0.3
    scores = np.round(rng.random(300) + 0.4 * truth, 1)  # rounding makes many ties
    assert roc_auc(truth, scores) == pytest.approx(roc_auc_score(truth, scores))
    assert np.isnan(roc_auc(np.ones(4, bool), np.arange(4.0)))
    fpr, tpr, _ = roc_curve(truth, scores)
    assert fpr[0] == 0 and tpr[-1] == 1 and np.all(np.diff(tpr) >= 0)
    assert np.trapz(tpr, fpr) == pytest.approx(roc_auc_score(truth, scores), abs=1e-9)


def test_dice_pearson_and_volume_agreement() -> None:
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2, :2] = True  # 4 pixels
    b[1:3, :2] = True  # 4 pixels, 2 shared
    assert dice(a, b) == pytest.approx(0.5)
    assert np.isnan(dice(np.zeros(3, bool), np.zeros(3, bool)))
    assert pearson_r([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    agreement = volume_agreement(np.array([11.0, 18.0, 33.0]), np.array([10.0, 20.0, 30.0]))
    assert agreement["bias_percent"] == pytest.approx((10 - 10 + 10) / 3)
    differences = np.array([1.0, -2.0, 3.0])
    assert agreement["bland_altman_mean_ml"] == pytest.approx(differences.mean())
    spread = 1.96 * differences.std(ddof=1)
    assert agreement["bland_altman_high_ml"] == pytest.approx(differences.mean() + spread)


def test_balanced_figures_and_bootstrap() -> None:
    truth = np.array([1] * 5 + [0] * 50, bool)
    scores = np.where(truth, 0.8, 0.2) + np.random.default_rng(2).normal(0, 0.2, truth.size)
    full, balanced = detection(truth, scores, 0.5), balanced_detection(truth, scores, 0.5)
    sens, spec = full["sensitivity"], full["specificity"]
    assert balanced["sensitivity"] == sens and balanced["specificity"] == spec
    assert balanced["accuracy"] == pytest.approx((sens + spec) / 2)
    assert balanced["ppv"] == pytest.approx(sens / (sens + 1 - spec))
    interval = bootstrap(roc_auc, truth, scores, resamples=300)
    assert interval.low <= interval.value <= interval.high
    assert interval.value == pytest.approx(roc_auc(truth, scores))
    again = bootstrap(roc_auc, truth, scores, resamples=300)
    assert again == interval  # seeded: the same interval every run


def test_stratified_bootstrap_keeps_a_rare_positive_in_every_draw() -> None:
    truth = np.zeros(10, bool)
    truth[0] = True
    scores = np.linspace(0.9, 0.0, 10)
    plain = bootstrap(roc_auc, truth, scores, resamples=200)
    stratified = bootstrap(roc_auc, truth, scores, resamples=200, strata=truth)
    assert stratified.value == 1.0 and stratified.low == 1.0  # defined in every draw
    assert plain.value == stratified.value
    agreement = volume_agreement(np.array([0.002, 20.0]), np.array([0.001, 21.0]))
    assert agreement["bias_percent"] == pytest.approx((100 + 100 * -1 / 21) / 2)
    assert agreement["pooled_bias_percent"] == pytest.approx(100 * (20.002 - 21.001) / 21.001)

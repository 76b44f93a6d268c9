"""The evaluation pipeline end to end on a small synthetic set, with test predictors.

The predictors here are test doubles for the model (which arrives with the training issue):
one returns the truth, one a degraded truth, so the expected figures are known.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from ich.dicom.volume import Volume
from ich.evaluate.cases import EvaluationDataError, LabelledCase, labelled_cases
from ich.evaluate.report import write_report
from ich.evaluate.runner import run
from ich.phantom.dataset import DatasetPlan, write_dataset
from ich.phantom.generate import CaseOptions, synthesize
from ich.quantify import MeasurementGrid, exam_result, instances_from_labels
from ich.schema import ExamResult, HemorrhageClass, OperatingPoint

POINT = OperatingPoint(
    thresholds={c: 0.5 for c in HemorrhageClass}, any_ich=0.5, source="fixed for the test"
)


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[LabelledCase]:
    out = tmp_path_factory.mktemp("evalset")
    options = CaseOptions(prevalence=0.6, matrix=256, slice_mm=5.0)
    write_dataset(out, DatasetPlan(31, 8, synthesize, options, 0.0), {"seed": 31}, workers=2)
    return list(labelled_cases(out))


def _predictor(by_volume: dict[int, np.ndarray], erode: bool):
    def predict(volume: Volume) -> tuple[ExamResult, np.ndarray]:
        label = by_volume[id(volume)].copy()
        if erode:  # a model that misses the rim of every bleed
            label[~ndi.binary_erosion(label > 0, np.ones((1, 3, 3), bool))] = 0
        instances = instances_from_labels(label, np.where(label > 0, 0.9, 0.0))
        geometry = MeasurementGrid.of(volume)
        result = exam_result(volume.study_uid, volume.series_uid, instances, geometry, POINT)
        return result, label

    return predict


def test_a_perfect_predictor_scores_perfectly(cases: list[LabelledCase], tmp_path: Path) -> None:
    truth = {id(c.volume): c.label for c in cases}
    outcomes = run(cases, _predictor(truth, erode=False))
    summary = write_report(outcomes, POINT, tmp_path, resamples=50)
    any_ich = summary["detection_full"]["any ICH"]
    assert any_ich["accuracy"].value == 1.0 and any_ich["auc"].value == 1.0
    for c in HemorrhageClass:
        if any(o.positive(c) for o in outcomes):
            assert summary["dice"][c.value].value == pytest.approx(1.0)
            bias = summary["volume"][c.value]["bias_percent"].value
            assert bias == pytest.approx(0.0, abs=0.05)  # reported volumes are rounded
    for name in ("report.md", "metrics.json", "roc.png", "volumes.png", "gallery.png"):
        assert (tmp_path / name).is_file(), name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["exams"] == len(cases) and metrics["positive_exams"] > 0
    report = (tmp_path / "report.md").read_text()
    assert "balanced set (Table 2)" in report and "0.931" in report


def test_a_rim_missing_predictor_underestimates(cases: list[LabelledCase], tmp_path: Path) -> None:
    truth = {id(c.volume): c.label for c in cases}
    summary = write_report(run(cases, _predictor(truth, erode=True)), POINT, tmp_path, 50)
    dices = [summary["dice"][c.value].value for c in HemorrhageClass]
    assert all(d < 1.0 for d in dices if not np.isnan(d))
    biases = [summary["volume"][c.value]["bias_percent"].value for c in HemorrhageClass]
    assert all(b < 0 for b in biases if not np.isnan(b))
    abc2 = summary["abc2_of_true_iph"]
    assert abc2["kothari"]["bias_percent"].value < abc2["extent"]["bias_percent"].value


def test_missing_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EvaluationDataError, match="ich synth"):
        list(labelled_cases(tmp_path))

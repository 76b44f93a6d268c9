"""Labelled cases for evaluation: a written synthetic data set (or any set in its layout)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ich.dicom import load
from ich.dicom.volume import Volume
from ich.errors import IchError
from ich.phantom.dataset import load_truth, truth_on_volume


class EvaluationDataError(IchError):
    code = "evaluation_data_unusable"
    title = "Evaluation data unusable"


@dataclass
class LabelledCase:
    """One study as ingestion sees it, with its ground truth on the same grid."""

    name: str
    volume: Volume
    label: np.ndarray
    instance: np.ndarray
    record: dict[str, Any]


def labelled_cases(data: Path) -> Iterator[LabelledCase]:
    """Every case listed in ``data/manifest.json``, ingested, truth moved onto its grid.

    Raises:
        EvaluationDataError: no manifest, or a listed case is missing.
    """
    manifest_path = data / "manifest.json"
    if not manifest_path.is_file():
        raise EvaluationDataError(
            f"{manifest_path} not found: point --data at a folder written by `ich synth` "
            "(or laid out like one: manifest.json and case_*/dicom, case_*/truth)."
        )
    for entry in json.loads(manifest_path.read_text())["cases"]:
        yield labelled_case(data / entry["case"])


def labelled_case(case_dir: Path) -> LabelledCase:
    """One case folder (``dicom/`` and ``truth/``), ingested, truth moved onto its grid."""
    if not (case_dir / "truth" / "label.nii.gz").is_file():
        raise EvaluationDataError(f"{case_dir} has no truth/label.nii.gz")
    volume = load(case_dir / "dicom")
    label, instance, _, record = load_truth(case_dir)
    return LabelledCase(
        f"{case_dir.parent.name}/{case_dir.name}",
        volume,
        truth_on_volume(label, volume),
        truth_on_volume(instance, volume),
        record,
    )

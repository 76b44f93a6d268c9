"""Run a predictor over labelled cases and keep, per exam, what the tables are made of."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ich.dicom.volume import Volume
from ich.evaluate.cases import LabelledCase
from ich.evaluate.metrics import dice
from ich.phantom.dataset import UNCLASSIFIED
from ich.quantify import abc2_ml, instances_from_labels
from ich.quantify.strata import stratum_of
from ich.schema import ExamResult, HemorrhageClass

Predictor = Callable[[Volume], tuple[ExamResult, np.ndarray]]
"""A model: the ingested volume -> its exam result and label volume on the same grid."""


@dataclass
class ExamOutcome:
    """Truth and prediction of one exam, per class."""

    name: str
    truth_volume_ml: dict[HemorrhageClass, float]
    truth_stratum: dict[HemorrhageClass, str | None]
    """Stratum of the largest true instance of the class (None when absent)."""
    probability: dict[HemorrhageClass, float]
    any_probability: float
    predicted_volume_ml: dict[HemorrhageClass, float]
    dice: dict[HemorrhageClass, float]
    """NaN where neither truth nor prediction has the class."""
    unclassified_ml: float = 0.0
    """True blood no class names (intraventricular, say): counted in "any ICH" and all blood."""
    blood_voxels: tuple[int, int, int] = (0, 0, 0)
    """All blood, every class together: (overlap, predicted, true) voxels, for Dice per exam
    and pooled over exams."""
    iph_abc2: list[tuple[float, float, float]] = field(default_factory=list)
    """(true volume, ABC/2 with Kothari's C, ABC/2 with the full extent) of each true IPH."""
    key_slice: np.ndarray | None = None
    """uint8 (3, rows, columns): brain-window image, true and predicted blood, on the plane
    with the most of either; for the gallery of errors."""

    def positive(self, hemorrhage_class: HemorrhageClass | None = None) -> bool:
        if hemorrhage_class is None:
            return self.unclassified_ml > 0 or any(v > 0 for v in self.truth_volume_ml.values())
        return self.truth_volume_ml[hemorrhage_class] > 0

    @property
    def true_blood_ml(self) -> float:
        return sum(self.truth_volume_ml.values()) + self.unclassified_ml

    @property
    def dice_all(self) -> float:
        """Dice of all blood against all true blood; NaN when neither has any."""
        overlap, predicted, true = self.blood_voxels
        return 2 * overlap / (predicted + true) if predicted + true else float("nan")


def outcome(case: LabelledCase, result: ExamResult, predicted: np.ndarray) -> ExamOutcome:
    """Compare one prediction with the truth of its case."""
    voxel_ml = case.volume.voxel_volume_ml
    truth_instances = instances_from_labels(case.label)
    truth_ml = {c: float((case.label == c.label).sum()) * voxel_ml for c in HemorrhageClass}
    spacing = case.volume.spacing_mm
    blood, found = case.label > 0, predicted > 0
    return ExamOutcome(
        name=case.name,
        truth_volume_ml=truth_ml,
        # Table 1 counts exams by the class's total volume in them.
        truth_stratum={c: stratum_of(v).value if v > 0 else None for c, v in truth_ml.items()},
        probability={f.hemorrhage_class: f.probability for f in result.classes},
        any_probability=result.any_ich_probability,
        # The volumes the product reports, not recounted here: evaluation checks them.
        predicted_volume_ml={f.hemorrhage_class: f.total_volume_ml for f in result.classes},
        dice={c: dice(predicted == c.label, case.label == c.label) for c in HemorrhageClass},
        unclassified_ml=float((case.label == UNCLASSIFIED).sum()) * voxel_ml,
        blood_voxels=(int((blood & found).sum()), int(found.sum()), int(blood.sum())),
        iph_abc2=[
            (
                i.voxels * voxel_ml,
                abc2_ml(i.mask, spacing),
                abc2_ml(i.mask, spacing, craniocaudal="extent"),
            )
            for i in truth_instances
            if i.hemorrhage_class is HemorrhageClass.IPH
        ],
        key_slice=_key_slice(case.volume.hu, case.label > 0, predicted > 0),
    )


def _key_slice(hu: np.ndarray, truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """The plane with the most true or predicted blood (the middle one if none)."""
    area = (truth | predicted).sum(axis=(1, 2))
    k = int(np.argmax(area)) if area.any() else hu.shape[0] // 2
    window = np.clip((hu[k].astype(np.float32) + 0.0) / 80.0 * 255.0, 0, 255).astype(np.uint8)
    return np.stack([window, truth[k].astype(np.uint8), predicted[k].astype(np.uint8)])


def run(
    cases: Iterable[LabelledCase],
    predictor: Predictor,
    on_case: Callable[[ExamOutcome], None] | None = None,
) -> list[ExamOutcome]:
    """The predictor on every case (``on_case`` hears of each, for a progress display)."""
    outcomes = []
    for case in cases:
        result, predicted = predictor(case.volume)
        if predicted.shape != case.label.shape:
            raise ValueError(
                f"{case.name}: prediction {predicted.shape} is not on the volume grid "
                f"{case.label.shape}"
            )
        outcomes.append(outcome(case, result, predicted))
        if on_case is not None:
            on_case(outcomes[-1])
    return outcomes

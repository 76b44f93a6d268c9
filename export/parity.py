"""Does an exported detector answer like the PyTorch one on the same blocks?"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from ich.model.contract import DETECTOR_OUTPUTS

OUTPUT_NAMES = tuple(name.split("__")[0] for name in DETECTOR_OUTPUTS)
FP32 = {"boxes": 0.5, "scores": 1e-3, "masks": 0.02}
"""Largest differences accepted of an FP32 runtime: boxes in model pixels, probabilities."""
FP16 = {"boxes": 2.0, "scores": 2e-2, "masks": 0.1}


class Parity(BaseModel):
    """Largest absolute differences per output, and whether the detections agree: the same
    number per plane and the same classes, boxes, scores and masks within ``tolerances``."""

    runtime: str
    max_abs_diff: dict[str, float]
    detections: int
    detections_agree: bool
    tolerances: dict[str, float]


def compare(
    runtime: str,
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    tolerances: dict[str, float] = FP32,
) -> Parity:
    diffs = {
        name: float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())
        for name, a, b in zip(OUTPUT_NAMES, reference, candidate, strict=True)
    }
    agree = (
        diffs["counts"] == 0
        and diffs["labels"] == 0
        and all(diffs[name] <= limit for name, limit in tolerances.items())
    )
    return Parity(
        runtime=runtime,
        max_abs_diff=diffs,
        detections=int(np.asarray(reference[4]).sum()),
        detections_agree=bool(agree),
        tolerances=tolerances,
    )

"""Does an exported detector answer like the PyTorch one on the same blocks?"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

OUTPUT_NAMES = ("boxes", "labels", "scores", "masks", "counts")


class Parity(BaseModel):
    """Largest absolute differences per output, and whether the detections agree: the same
    number per plane, the same classes, scores within ``score_tolerance``."""

    runtime: str
    max_abs_diff: dict[str, float]
    detections: int
    detections_agree: bool
    score_tolerance: float


def compare(
    runtime: str,
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    score_tolerance: float = 1e-3,
) -> Parity:
    diffs = {
        name: float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())
        for name, a, b in zip(OUTPUT_NAMES, reference, candidate, strict=True)
    }
    _, labels, _, _, counts = reference
    agree = (
        np.array_equal(counts, candidate[4])
        and np.array_equal(labels, candidate[1])
        and diffs["scores"] <= score_tolerance
    )
    return Parity(
        runtime=runtime,
        max_abs_diff=diffs,
        detections=int(np.asarray(counts).sum()),
        detections_agree=bool(agree),
        score_tolerance=score_tolerance,
    )

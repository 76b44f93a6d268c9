"""The detector's padded outputs, back on the volume as per-plane detections."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ich.preprocess.cavity import inside_share
from ich.preprocess.grid import ModelGrid
from ich.quantify.instances import Detection
from ich.schema import HemorrhageClass


@dataclass(frozen=True)
class DetectorOutputs:
    """What the detector returns for a series' model planes (numpy, zero-padded to K)."""

    boxes: np.ndarray
    """float (planes, K, 4): x1, y1, x2, y2 in model pixels."""
    labels: np.ndarray
    """int (planes, K): 1 IPH, 2 EDH/SDH, 3 SAH."""
    scores: np.ndarray
    """float (planes, K)."""
    masks: np.ndarray
    """float (planes, K, M, M): mask probability over each box."""
    counts: np.ndarray
    """int (planes,): real detections per plane."""

    @classmethod
    def from_blocks(cls, arrays: Sequence[np.ndarray], planes: int) -> DetectorOutputs:
        """The detector's (blocks, P, ...) outputs as ``planes`` planes (block fill dropped)."""
        flat = [a.reshape(-1, *a.shape[2:])[:planes] for a in arrays]
        if len(flat) != 5 or any(len(a) != planes for a in flat):
            shapes = [a.shape for a in arrays]
            raise ValueError(f"detector outputs {shapes} do not cover {planes} planes")
        return cls(*flat)


MIN_INSIDE = 0.5
"""A detection is kept when at least this share of its mask lies inside the skull."""


def detections_on_volume(
    grid: ModelGrid, outputs: DetectorOutputs, cavity: np.ndarray | None = None
) -> list[Detection]:
    """Every detection as a mask on each volume plane of its slab (empty masks dropped).

    With the intracranial ``cavity`` (bool, (planes, size, size) on the model grid), a
    detection mostly outside it (:data:`MIN_INSIDE`) is dropped: intracranial blood lies
    inside the skull, and what the detector finds in the orbits, sinuses or scalp is a mimic.
    """
    if len(outputs.counts) != grid.planes:
        raise ValueError(f"{len(outputs.counts)} planes of outputs for a {grid.planes}-plane grid")
    if cavity is not None and cavity.shape != (grid.planes, grid.spec.size, grid.spec.size):
        raise ValueError(f"cavity {cavity.shape} does not match the {grid.planes}-plane grid")
    found = []
    for plane, count in enumerate(outputs.counts):
        for k in range(int(count)):
            probability, box = outputs.masks[plane, k], outputs.boxes[plane, k]
            if cavity is not None:
                inside = inside_share(cavity[plane], grid.model_mask(probability, box))
                if inside < MIN_INSIDE:
                    continue
            mask = grid.volume_mask(probability, box)
            if not mask.any():
                continue
            hemorrhage_class = HemorrhageClass.from_label(int(outputs.labels[plane, k]))
            score = float(outputs.scores[plane, k])
            found += [Detection(v, hemorrhage_class, score, mask) for v in grid.slab(plane)]
    return found

"""From per-plane detections (or a label volume) to 3D hemorrhage instances.

The 2D head of the detector sees one plane at a time; a bleed spans several. Detections are
painted into one label volume, lowest score first, so where two overlap the voxel belongs to
the more confident one (and so to its class). Instances are then the connected components of
each class, 26-connected across planes. Touching components of different classes stay separate
instances: an IPH that reached the ventricles and the SAH beside it are two findings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ich.schema import HemorrhageClass

_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class Detection:
    """One detection on one plane of the analysed volume."""

    plane: int
    hemorrhage_class: HemorrhageClass
    score: float
    mask: np.ndarray
    """bool (rows, columns) of the whole plane."""


@dataclass(frozen=True)
class Instance:
    """A 3D hemorrhage: its class, score and voxels (a box of the volume and a mask in it)."""

    hemorrhage_class: HemorrhageClass
    score: float
    region: tuple[slice, slice, slice]
    mask: np.ndarray
    """bool, the shape of ``region``."""
    plane_scores: tuple[float, ...] = ()
    """Highest score on each plane of ``region`` (empty without a score volume)."""

    @property
    def voxels(self) -> int:
        return int(self.mask.sum())


def instances_from_labels(
    label: np.ndarray, score: np.ndarray | None = None, min_voxels: int = 1
) -> list[Instance]:
    """Connected components of each class of a label volume (1 IPH, 2 EDH/SDH, 3 SAH).

    ``score`` gives each voxel's confidence (an instance scores its highest voxel); without it
    every instance scores 1. Components smaller than ``min_voxels`` are dropped. Instances
    come largest first within each class, classes in order.
    """
    found = []
    for hemorrhage_class in HemorrhageClass:
        components, _ = ndi.label(label == hemorrhage_class.label, _CONNECTIVITY)
        for number, region in enumerate(ndi.find_objects(components), start=1):
            if region is None:
                continue
            mask = components[region] == number
            if mask.sum() < min_voxels:
                continue
            if score is None:
                best, planes = 1.0, ()
            else:
                inside = np.where(mask, score[region], 0.0)
                planes = tuple(float(v) for v in inside.max(axis=(1, 2)))
                best = max(planes)
            found.append(Instance(hemorrhage_class, best, region, mask, planes))
    found.sort(key=lambda i: (i.hemorrhage_class.label, -i.voxels))
    return found


def paint_detections(
    detections: list[Detection], shape: tuple[int, int, int], min_score: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Label (uint8) and score (float32) volumes of the detections at or above ``min_score``;
    where detections overlap, the higher score wins the voxel."""
    label = np.zeros(shape, dtype=np.uint8)
    score = np.zeros(shape, dtype=np.float32)
    for detection in sorted(detections, key=lambda d: d.score):
        if detection.score < min_score:
            continue
        if detection.mask.shape != shape[1:]:
            raise ValueError(
                f"detection mask {detection.mask.shape} does not match planes {shape[1:]}"
            )
        if not 0 <= detection.plane < shape[0]:
            raise ValueError(f"detection on plane {detection.plane} of a {shape[0]}-plane volume")
        plane = detection.mask.astype(bool)
        label[detection.plane][plane] = detection.hemorrhage_class.label
        score[detection.plane][plane] = detection.score
    return label, score


def instances_from_detections(
    detections: list[Detection],
    shape: tuple[int, int, int],
    min_score: float = 0.0,
    min_voxels: int = 1,
) -> list[Instance]:
    """3D instances from per-plane detections (see the module docstring for the rules)."""
    label, score = paint_detections(detections, shape, min_score)
    return instances_from_labels(label, score, min_voxels)

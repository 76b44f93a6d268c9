"""Mass effect of large bleeds: brain pushed away from the lesion, midline shifted.

The brain inside the skull is displaced radially away from the largest bleed: by about half
the bleed's equivalent radius at its surface, fading with distance beyond it. The skull does
not move; brain pulled in from outside the cranial cavity becomes CSF (the widened space next
to the bleed). Ventricles near the bleed are compressed and pushed across, the midline
structures shift, as on a real scan.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi

from ich.phantom.anatomy import Anatomy, Tissue
from ich.phantom.fields import HeadGrid
from ich.phantom.lesions import Lesion

_MIN_ML = 15.0
"""Total bleed volume below which no shift is modelled."""
_REACH_MM = 30.0
"""How far beyond the bleed's surface the push fades (Gaussian sigma)."""
_MIDLINE = np.array([[0.0, y, 16.0] for y in np.linspace(-30.0, 40.0, 15)])
"""Septum pellucidum to pineal region, head frame: where midline shift is read."""
_INTRACRANIAL = np.array(
    [Tissue.CSF, Tissue.VENTRICLE, Tissue.GREY, Tissue.WHITE, Tissue.DEEP_GREY,
     Tissue.BRAINSTEM, Tissue.CEREBELLUM, Tissue.DURA, Tissue.CALCIFICATION],
    dtype=np.uint8,
)  # fmt: skip


Displacement = Callable[[np.ndarray, np.ndarray | None], np.ndarray]
"""Head-frame points (..., 3) and their depth inside the inner table (or None) -> how far
the brain there is pushed (..., 3), mm."""


def displacement(lesions: list[Lesion], grid: HeadGrid) -> Displacement | None:
    """The push of the bleeds drawn on ``grid``, or None when they are too small to shift
    anything (a total under 15 mL)."""
    volumes = [lesion.volume_ml(grid) for lesion in lesions]
    total = sum(volumes)
    if not lesions or total < _MIN_ML:
        return None
    largest = lesions[int(np.argmax(volumes))]
    z, y, x = grid.axes(largest.box)
    weights = largest.blood
    mass = float(weights.sum())
    centre = np.array([float((weights * a).sum()) / mass for a in (x, y, z)])
    radius = (3 * total * 1000 / (4 * np.pi)) ** (1 / 3)
    amplitude = 0.5 * radius

    def push(points: np.ndarray, depth: np.ndarray | None) -> np.ndarray:
        offset = points - centre
        distance = np.linalg.norm(offset, axis=-1, keepdims=True) + 1e-6
        beyond = np.clip(distance - radius, 0.0, None)
        size = amplitude * np.exp(-(beyond**2) / (2 * _REACH_MM**2))
        if depth is not None:
            # Away from the bleed the brain slides along the skull, not off it: the push
            # fades within 10 mm of the inner table there (near the bleed it does not).
            far = beyond > 10.0
            size = size * np.where(far, np.clip(depth[..., None] / 10.0, 0.0, 1.0), 1.0)
        return size * offset / distance

    return push


def midline_shift_mm(push: Displacement | None, centre: np.ndarray) -> float:
    """Largest sideways displacement between septum pellucidum and pineal region; ``centre``
    is the head-frame position of the brain's centre (the phantom's origin)."""
    if push is None:
        return 0.0
    return float(np.abs(push(_MIDLINE + centre, None)[:, 0]).max())


def apply_mass_effect(anatomy: Anatomy, lesions: list[Lesion]) -> float:
    """Displace the brain around the largest lesion; returns the midline shift in mm."""
    grid = anatomy.grid
    push = displacement(lesions, grid)
    if push is None:
        return 0.0
    k, i, j = np.nonzero(anatomy.depth_mm > 0)
    zs, ys, xs = grid.axes()
    points = np.stack([xs.ravel()[j], ys.ravel()[i], zs.ravel()[k]], axis=-1)
    source = grid.index_of(points - push(points, anatomy.depth_mm[k, i, j]))
    moved = ndi.map_coordinates(anatomy.tissue, source.T, order=0, mode="nearest")
    moved[~np.isin(moved, _INTRACRANIAL)] = Tissue.CSF
    anatomy.tissue[k, i, j] = moved
    return midline_shift_mm(push, np.zeros(3))

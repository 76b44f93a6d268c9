"""Mass effect of large bleeds: brain pushed away from the lesion, midline shifted.

The brain inside the skull is displaced radially away from the largest bleed: by about half
the bleed's equivalent radius at its surface, fading with distance beyond it. The skull does
not move; brain pulled in from outside the cranial cavity becomes CSF (the widened space next
to the bleed). Ventricles near the bleed are compressed and pushed across, the midline
structures shift, as on a real scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ich.phantom.anatomy import INTRACRANIAL, Anatomy, Tissue
from ich.phantom.fields import HeadGrid
from ich.phantom.lesions import Kind, Lesion

_MIN_ML = 15.0
"""Total bleed volume below which no shift is modelled."""
_REACH_MM = 40.0
"""How far beyond the bleed's surface the broad shift fades (Gaussian sigma)."""
_MIDLINE = np.array([[0.0, y, 16.0] for y in np.linspace(-30.0, 40.0, 15)])
"""Septum pellucidum to pineal region, head frame: where midline shift is read."""


@dataclass(frozen=True)
class Push:
    """How far the brain now at a point was pushed there, and from where.

    Near the bleed the brain makes room for it as an incompressible medium would, with the
    radial push that keeps volume (r -> (r^3 + a^3)^(1/3)): tissue there is displaced, not
    stretched. The closed skull turns the rest into a broad shift of the whole brain (midline,
    ventricles), a slowly fading translation that changes no volumes.
    """

    centre: np.ndarray
    radius: float
    room: float
    shift: float

    def __call__(self, points: np.ndarray, depth: np.ndarray | None) -> np.ndarray:
        """Displacement (..., 3) of head-frame points (..., 3): the tissue now at ``points``
        came from ``points - push``. ``depth`` (inside the inner table) lets the push fade
        along the skull away from the bleed, where brain slides along bone, not off it."""
        offset = points - self.centre
        distance = np.linalg.norm(offset, axis=-1, keepdims=True) + 1e-6
        beyond = np.clip(distance - self.radius, 0.0, None)
        size = self.near(distance)
        size = size + self.shift * np.exp(-(beyond**2) / (2 * _REACH_MM**2))
        if depth is not None:
            far = beyond > 10.0
            size = size * np.where(far, np.clip(depth[..., None] / 10.0, 0.0, 1.0), 1.0)
        return size * offset / distance

    def near(self, distance: np.ndarray) -> np.ndarray:
        """The volume-keeping part of the push at ``distance`` from the bleed: how much the
        tissue there is compressed towards the skull (the broad shift compresses nothing)."""
        return distance - np.cbrt(np.clip(distance**3 - self.room**3, 0.0, None))

    def from_the_bleed(self, points: np.ndarray) -> np.ndarray:
        """Points whose tissue came from the space the bleed now fills."""
        return np.linalg.norm(points - self.centre, axis=-1) < self.room


def displacement(lesions: list[Lesion], grid: HeadGrid) -> Push | None:
    """The push of the bleeds drawn on ``grid``, or None when they are too small to shift
    anything (space-occupying blood under 15 mL in total: SAH fills existing CSF spaces and
    does not count)."""
    masses = [lesion for lesion in lesions if lesion.spec.kind is not Kind.SAH]
    volumes = [lesion.volume_ml(grid) for lesion in masses]
    total = sum(volumes)
    if not masses or total < _MIN_ML:
        return None
    largest = masses[int(np.argmax(volumes))]
    z, y, x = grid.axes(largest.box)
    weights = largest.blood
    mass = float(weights.sum())
    centre = np.array([float((weights * a).sum()) / mass for a in (x, y, z)])
    radius = (3 * total * 1000 / (4 * np.pi)) ** (1 / 3)
    return Push(centre, radius, room=0.6 * radius, shift=0.3 * radius)


def midline_shift_mm(push: Push | None, centre: np.ndarray) -> float:
    """Largest sideways displacement between septum pellucidum and pineal region; ``centre``
    is the head-frame position of the brain's centre (the phantom's origin)."""
    if push is None:
        return 0.0
    return float(np.abs(push(_MIDLINE + centre, None)[:, 0]).max())


def apply_mass_effect(anatomy: Anatomy, lesions: list[Lesion]) -> float:
    """Displace the brain around the largest lesion and efface the CSF spaces it presses;
    returns the midline shift in mm."""
    grid = anatomy.grid
    push = displacement(lesions, grid)
    if push is None:
        return 0.0
    k, i, j = np.nonzero(anatomy.depth_mm > 0)
    zs, ys, xs = grid.axes()
    points = np.stack([xs.ravel()[j], ys.ravel()[i], zs.ravel()[k]], axis=-1)
    origin = points - push(points, anatomy.depth_mm[k, i, j])
    moved = ndi.map_coordinates(anatomy.tissue, grid.index_of(origin).T, order=0, mode="nearest")
    # What came from the bleed's own space is brain around the blood, whatever was there (a
    # ventricle the bleed wrapped around must not be dragged out and enlarged).
    moved[push.from_the_bleed(origin)] = Tissue.WHITE
    moved[~np.isin(moved, np.asarray(INTRACRANIAL, dtype=np.uint8))] = Tissue.CSF
    anatomy.tissue[k, i, j] = moved
    _efface(anatomy, push)
    return midline_shift_mm(push, np.zeros(3))


_PRESSED_MM = 1.0
"""Compression above which CSF spaces are squeezed."""
_VENTRICLE_WALL_MM = 3
"""How much of a pressed ventricle's rim collapses, in voxels (1 mm)."""


def _efface(anatomy: Anatomy, push: Push) -> None:
    """Where the brain is pressed, the sulci close and the ventricles narrow: sulcal CSF
    becomes cortex and a pressed ventricle loses its rim (the effacement radiologists read
    as mass effect)."""
    grid = anatomy.grid
    reach = push.radius + 2 * _REACH_MM
    box = grid.box(tuple(push.centre - reach), tuple(push.centre + reach))
    z, y, x = grid.axes(box)
    distance = np.sqrt((x - push.centre[0]) ** 2 + (y - push.centre[1]) ** 2
                       + (z - push.centre[2]) ** 2)  # fmt: skip
    # The bleed's own hemisphere is pressed within reach, whatever the near-field figure says.
    same_side = np.sign(x) == np.sign(push.centre[0])
    pressed = (push.near(distance) > _PRESSED_MM) | (same_side & (distance < push.radius + 30))
    tissue = anatomy.tissue[box]
    tissue[pressed & (tissue == Tissue.CSF) & (anatomy.depth_mm[box] > 1.0)] = Tissue.GREY
    ventricle = tissue == Tissue.VENTRICLE
    core = ndi.binary_erosion(ventricle, iterations=_VENTRICLE_WALL_MM)
    tissue[pressed & ventricle & ~core] = Tissue.WHITE

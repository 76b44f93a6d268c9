"""The intracranial cavity on the model grid: where a hemorrhage can be.

Acute intracranial blood lies inside the skull. A detector that has seen few real heads also
fires outside it, on the orbits, the nasal cavity, the paranasal sinuses and the scalp, where
soft tissue, mucosa and partial-volumed bone look like a dense collection. Each model plane's
cavity is the region the skull encloses: bone (>= :data:`BONE_HU`), closed over small gaps
(sutures, thin temporal squama, foramina), its holes filled, bone and air taken away. An
enclosed region holding fat or air is the orbits, the sinuses or the neck, not the brain.

A trauma skull may be open: a fracture, a burr hole or a craniectomy leaves a gap wider than
the closing bridges, the fill leaks out through it, and the plane's cavity collapses. Such a
plane is recognised by its neighbours: the cavity's area changes slowly from plane to plane,
so a plane with much less than the planes on both sides of it takes their cavities (slightly
widened) within the convex hull of its own skull. Below the skull base, where small regions
of changing size bracket each other, and at the ends, planes keep what their own fill found.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull

BONE_HU = 150.0
"""Bone on the model grid: above any blood or soft tissue, and below what a windowed series'
restored skull resamples to (:mod:`ich.preprocess.stored_window`)."""
AIR_HU = -200.0
"""Air (sinuses, mastoid cells, outside the head) is no part of the cavity."""
FAT_HU = -30.0
"""Below any brain, CSF or blood: fat, or air (and the floor of a windowed series, which
restores to air)."""
MAX_FATTY = 0.25
"""An enclosed region with more fat or air than this is not the cranial cavity but the
orbits, the sinuses or the neck below the skull base (the brain holds neither)."""
COARSE_MM = 2.0
"""The pixel size the cavity is found on."""
CLOSING_MM = 6.0
"""Gaps in the skull up to about twice this wide are bridged before filling."""
BRACKET_MM = 20.0
"""How far (through the planes) a collapsed plane looks for intact neighbours."""
COLLAPSED = 0.5
"""A plane whose cavity is under this share of both bracketing planes' has leaked."""
VAULT = 0.35
"""Only planes bracketed by planes of the vault (whose cavity is at least this share of the
largest) are repaired: below the skull base small, changing regions bracket each other."""
PIECE = 0.2
"""Bone pieces this share of the largest or more make the skull of a plane."""
MIN_CEILING_HU = 90.0
"""A series stored in a display window whose ceiling is below this (an 80 HU wide brain
window, say) holds dense blood at the ceiling, as it does the skull: restored, both are bone
(:mod:`ich.preprocess.stored_window`), so no cavity is drawn there and nothing is dropped."""
WIDEN_MM = 4.0
"""Neighbours' cavities are widened by this much before they stand in for a plane's."""


def _disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius


_IN_PLANE = np.pad(ndi.generate_binary_structure(2, 1)[None], ((1, 1), (0, 0), (0, 0)))
"""Connectivity within each plane only: every plane of a stack is processed on its own."""


def _enclosed(bone: np.ndarray, radius: int) -> np.ndarray:
    """(planes, rows, cols): what each plane's bone encloses, after closing gaps up to
    ``2 * radius`` pixels, without the bone."""
    pad = ((1, 1), (radius, radius), (radius, radius))  # empty planes: every plane has a border
    closed = ndi.binary_closing(np.pad(bone, pad), _disk(radius)[None])
    filled = ndi.binary_fill_holes(closed, _IN_PLANE)[1:-1, radius:-radius, radius:-radius]
    return filled & ~bone


def _skull_hull(bone: np.ndarray) -> np.ndarray:
    """The convex hull of one plane's skull: its bone pieces of at least :data:`PIECE` of the
    largest (not a head holder or a stray calcification)."""
    pieces, count = ndi.label(bone)
    if count == 0:
        return bone
    size = np.bincount(pieces.ravel())[1:]
    keep = np.flatnonzero(size >= PIECE * size.max()) + 1
    points = np.argwhere(np.isin(pieces, keep))
    if len(points) < 3 or np.linalg.matrix_rank(points - points[0]) < 2:
        return np.zeros_like(bone)
    hull = ConvexHull(points)
    grid = np.indices(bone.shape).reshape(2, -1).T
    inside = (grid @ hull.equations[:, :2].T + hull.equations[:, 2] <= 1e-9).all(axis=1)
    return inside.reshape(bone.shape)


def _lean(enclosed: np.ndarray, hu: np.ndarray) -> np.ndarray:
    """The enclosed regions of each plane that hold little fat or air (see :data:`MAX_FATTY`)."""
    regions, count = ndi.label(enclosed, _IN_PLANE)
    if count == 0:
        return enclosed
    size = np.bincount(regions.ravel(), minlength=count + 1)
    fatty = np.bincount(regions.ravel(), weights=(hu < FAT_HU).ravel(), minlength=count + 1)
    keep = fatty <= MAX_FATTY * np.maximum(size, 1)
    keep[0] = False
    return keep[regions]


def intracranial_cavity(
    hu: np.ndarray, pixel_mm: float, slab_mm: float, ceiling: float | None = None
) -> np.ndarray:
    """bool (planes, rows, cols): the inside of the skull on each plane of ``hu`` (HU on the
    model grid, bone restored if the series was windowed at ``ceiling``), see the module
    docstring; everywhere under a ceiling too low to tell blood from bone.

    Found on pixels of about :data:`COARSE_MM` (on the 1 mm grid: a quarter of the pixels and
    a smaller closing disk), then brought back to ``hu``'s pixels and grown up to the bone
    again, which the coarse pixels had thickened.
    """
    if hu.ndim != 3:
        raise ValueError(f"expected (planes, rows, columns) HU planes, got shape {hu.shape}")
    if ceiling is not None and ceiling < MIN_CEILING_HU:
        return np.ones(hu.shape, dtype=bool)
    factor = max(1, round(COARSE_MM / pixel_mm))
    if factor == 1:
        return _cavity(hu, pixel_mm, slab_mm)
    planes, rows, cols = hu.shape
    padded = np.pad(hu, ((0, 0), (0, -rows % factor), (0, -cols % factor)), mode="edge")
    coarse = padded.reshape(planes, padded.shape[1] // factor, factor, -1, factor).mean((2, 4))
    found = _cavity(coarse, pixel_mm * factor, slab_mm)
    found = found.repeat(factor, axis=1).repeat(factor, axis=2)[:, :rows, :cols]
    grown = ndi.binary_dilation(found, _disk(factor)[None])
    return grown & (hu < BONE_HU) & (hu > AIR_HU)


def _cavity(hu: np.ndarray, pixel_mm: float, slab_mm: float) -> np.ndarray:
    """:func:`intracranial_cavity` on ``hu``'s own pixels."""
    bone = hu >= BONE_HU
    soft = ~bone & (hu > AIR_HU)
    radius = max(1, round(CLOSING_MM / pixel_mm))
    cavity = _lean(_enclosed(bone, radius), hu) & soft
    area = cavity.sum(axis=(1, 2))
    reach = max(1, math.ceil(BRACKET_MM / slab_mm))
    widen = _disk(max(1, round(WIDEN_MM / pixel_mm)))
    repaired = cavity.copy()
    for plane in range(len(hu)):
        below = range(max(0, plane - reach), plane)
        above = range(plane + 1, min(len(hu), plane + reach + 1))
        if not below or not above:
            continue
        low = max(below, key=lambda k: area[k])
        high = max(above, key=lambda k: area[k])
        bracket = min(area[low], area[high])
        if bracket < VAULT * area.max() or area[plane] >= COLLAPSED * bracket:
            continue
        neighbours = ndi.binary_dilation(cavity[low] | cavity[high], widen)
        repaired[plane] |= neighbours & _skull_hull(bone[plane]) & soft[plane]
    return repaired


def inside_share(cavity: np.ndarray, mask: np.ndarray) -> float:
    """The share of ``mask``'s pixels inside ``cavity`` (1 for an empty mask: nothing outside)."""
    total = int(mask.sum())
    return float((mask & cavity).sum()) / total if total else 1.0

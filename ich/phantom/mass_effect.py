"""Mass effect of large bleeds: brain pushed away from the lesion, midline shifted.

A smooth radial displacement centred on the lesion, fading to zero at the inner table, is
applied to the brain compartments (the skull does not move). Ventricles on the lesion's side are
compressed and the midline structures shift, as on a real scan.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ich.phantom.anatomy import Anatomy
from ich.phantom.lesions import Lesion

_MIN_ML = 15.0
"""Total bleed volume below which no shift is modelled."""


def apply_mass_effect(anatomy: Anatomy, lesions: list[Lesion]) -> float:
    """Displace the brain around the largest lesion; returns the midline shift in mm."""
    grid = anatomy.grid
    volumes = [lesion.volume_ml(grid) for lesion in lesions]
    if not lesions or sum(volumes) < _MIN_ML:
        return 0.0
    largest = lesions[int(np.argmax(volumes))]
    weights = largest.blood
    z, y, x = grid.axes(largest.box)
    total = float(weights.sum())
    centre = np.array(
        [float((w * a).sum()) / total for a, w in ((x, weights), (y, weights), (z, weights))]
    )
    amplitude = 3.5 * sum(volumes) ** (1 / 3)
    sigma = 18.0 + 1.2 * sum(volumes) ** (1 / 3)

    def displacement(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, ...]:
        dx, dy, dz = px - centre[0], py - centre[1], pz - centre[2]
        falloff = amplitude / sigma * np.exp(-(dx * dx + dy * dy + dz * dz) / (2 * sigma**2))
        return dx * falloff, dy * falloff, dz * falloff

    cavity = anatomy.depth_mm > 0
    k, i, j = np.nonzero(cavity)
    zs, ys, xs = grid.axes()
    px, py, pz = xs.ravel()[j], ys.ravel()[i], zs.ravel()[k]
    taper = np.clip(anatomy.depth_mm[k, i, j] / 12.0, 0.0, 1.0)
    ux, uy, uz = displacement(px, py, pz)
    source = grid.index_of(np.stack([px - ux * taper, py - uy * taper, pz - uz * taper], -1))
    anatomy.tissue[k, i, j] = ndi.map_coordinates(
        anatomy.tissue, source.T, order=0, mode="nearest", prefilter=False
    )
    shift_x, _, _ = displacement(np.float32(0.0), np.float32(-8.0), np.float32(16.0))
    return float(abs(shift_x))

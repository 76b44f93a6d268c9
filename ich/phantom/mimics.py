"""Hyperdense things that are not blood, and artefacts: what a detector must learn to ignore.

Calcifications (pineal, choroid plexus, falx, basal ganglia, cortex), falx thickening, beam
hardening at the skull base and along the inner table, and motion streaks. Each study draws
its own set; the manifest lists them so evaluation can report false positives per mimic.
"""

from __future__ import annotations

import numpy as np

from ich.phantom.anatomy import PARENCHYMA, Anatomy, Tissue, ellipsoid, paint

_SOFT = (*PARENCHYMA, Tissue.VENTRICLE, Tissue.CSF, Tissue.DURA)


def add_calcifications_and_falx(anatomy: Anatomy, rng: np.random.Generator) -> list[str]:
    """Paint calcifications and falx thickening into the tissue map; returns their names."""
    grid, tissue, p = anatomy.grid, anatomy.tissue, anatomy.params
    found = []
    if rng.random() < 0.6:
        r = rng.uniform(1.5, 3.5)
        paint(tissue, *ellipsoid(grid, (0.0, 21.0, 3.0), (r, r, r)), Tissue.CALCIFICATION)
        found.append("pineal calcification")
    if rng.random() < 0.5:
        s = p.ventricle_scale
        for side in (1.0, -1.0):
            r = rng.uniform(1.5, 3.5)
            centre = (side * (12.0 + 6.0 * s), 27.0, 11.0)
            paint(tissue, *ellipsoid(grid, centre, (r, r * 1.3, r)), Tissue.CALCIFICATION)
        found.append("choroid plexus calcification")
    if rng.random() < 0.25:
        half = rng.uniform(1.0, 2.2)
        box = grid.box((-half, -70.0, 26.0), (half, 70.0, p.top))
        z, _, _ = grid.axes(box)
        falx = (anatomy.depth_mm[box] > 0) & (z > 26.0)
        paint(tissue, box, falx, Tissue.DURA, over=(*_SOFT,))
        found.append("falx thickening")
    if rng.random() < 0.3:
        for _ in range(int(rng.integers(1, 4))):
            centre = (0.0, rng.uniform(-50, 50), rng.uniform(30, 55))
            radii = (0.8, rng.uniform(2, 6), rng.uniform(1.5, 4))
            paint(tissue, *ellipsoid(grid, centre, radii), Tissue.CALCIFICATION, over=_SOFT)
        found.append("falx calcification")
    if rng.random() < 0.15:
        for side in (1.0, -1.0):
            r = rng.uniform(1.0, 2.5)
            paint(
                tissue,
                *ellipsoid(grid, (side * 18.0, -3.0, 0.0), (r, r * 1.5, r)),
                Tissue.CALCIFICATION,
                over=_SOFT,
            )
        found.append("basal ganglia calcification")
    if rng.random() < 0.15:
        cortex = np.flatnonzero((tissue == Tissue.GREY) & (anatomy.depth_mm < 8))
        z, y, x = grid.axes()
        for flat in rng.choice(cortex, size=min(int(rng.integers(1, 5)), cortex.size)):
            k, i, j = np.unravel_index(flat, tissue.shape)
            centre = (float(x.ravel()[j]), float(y.ravel()[i]), float(z.ravel()[k]))
            r = rng.uniform(0.8, 1.8)
            paint(tissue, *ellipsoid(grid, centre, (r, r, r)), Tissue.CALCIFICATION, over=_SOFT)
        found.append("cortical calcification")
    return found


def add_beam_hardening(anatomy: Anatomy, hu: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Interpetrous dark band and a bright rim along the inner table, in head-frame HU."""
    found = []
    grid, tissue, depth = anatomy.grid, anatomy.tissue, anatomy.depth_mm
    if rng.random() < 0.6:
        box = grid.box((-45.0, 0.0, -48.0), (45.0, 45.0, -22.0))
        _, y, x = grid.axes(box)
        band = np.exp(-(((y - 14.0 - 0.2 * np.abs(x)) / rng.uniform(3, 6)) ** 2))
        soft = np.isin(tissue[box], np.asarray(_SOFT, dtype=np.uint8))
        hu[box] -= (rng.uniform(8, 25) * band * soft).astype(np.float32)
        found.append("interpetrous beam hardening")
    if rng.random() < 0.5:
        rim = (depth > 0) & (depth < 6.0)
        hu[rim] += np.float32(rng.uniform(3, 7)) * (1 - depth[rim] / 6.0)
        found.append("inner-table hyperdense rim")
    return found


def add_motion(planes: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Streaks across a few consecutive slices, as from head motion during the rotation."""
    if rng.random() >= 0.15:
        return []
    slices, rows, cols = planes.shape
    first = int(rng.integers(0, slices))
    count = int(rng.integers(1, 4))
    yy, xx = np.mgrid[:rows, :cols].astype(np.float32)
    for k in range(first, min(first + count, slices)):
        head = planes[k] > -300
        for _ in range(int(rng.integers(2, 6))):
            angle = rng.uniform(0, np.pi)
            offset = rng.uniform(-0.3, 0.3) * rows
            across = (xx - cols / 2) * np.cos(angle) + (yy - rows / 2) * np.sin(angle) - offset
            width = rng.uniform(0.8, 2.0)
            amplitude = rng.uniform(15, 45) * rng.choice([-1.0, 1.0])
            planes[k] += (amplitude * np.exp(-((across / width) ** 2)) * head).astype(np.float32)
    return ["motion streaks"]

"""An analytic head of nested ellipsoids: scalp, skull, brain, ventricles, optional bleeds.

Simple on purpose: its geometry is exact, so tests can check where a known structure lands
after ingestion (tilt correction, sorting, spacing). Realistic anatomy lives elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AIR, FAT, SOFT_TISSUE, BONE, BRAIN, CSF, BLOOD = -1000.0, -90.0, 40.0, 1100.0, 33.0, 6.0, 65.0


@dataclass(frozen=True)
class Ellipsoid:
    """An axis-aligned ellipsoid in patient coordinates (LPS, mm) with a uniform HU value."""

    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    hu: float

    def contains(self, points: np.ndarray) -> np.ndarray:
        scaled = (points - np.asarray(self.centre)) / np.asarray(self.radii)
        return np.einsum("...i,...i->...", scaled, scaled) <= 1.0

    def volume_ml(self) -> float:
        return 4.0 / 3.0 * np.pi * float(np.prod(self.radii)) / 1000.0


@dataclass(frozen=True)
class EllipsoidHead:
    """Nested ellipsoids centred at ``centre``; ``bleeds`` are painted last."""

    centre: tuple[float, float, float] = (0.0, 0.0, 0.0)
    radii: tuple[float, float, float] = (72.0, 92.0, 80.0)
    scalp_mm: float = 5.0
    skull_mm: float = 7.0
    bleeds: tuple[Ellipsoid, ...] = ()

    def _shell(self, inset: float, hu: float) -> Ellipsoid:
        return Ellipsoid(self.centre, tuple(r - inset for r in self.radii), hu)  # type: ignore[arg-type]

    def __call__(self, points: np.ndarray) -> np.ndarray:
        cx, cy, cz = self.centre
        ventricle_r = (9.0, 22.0, 12.0)
        layers = [
            self._shell(0.0, SOFT_TISSUE),
            self._shell(self.scalp_mm * 0.4, FAT),
            self._shell(self.scalp_mm, BONE),
            self._shell(self.scalp_mm + self.skull_mm, BRAIN),
            Ellipsoid((cx - 12.0, cy, cz + 10.0), ventricle_r, CSF),
            Ellipsoid((cx + 12.0, cy, cz + 10.0), ventricle_r, CSF),
            *self.bleeds,
        ]
        hu = np.full(points.shape[:-1], AIR, dtype=np.float32)
        for layer in layers:
            hu[layer.contains(points)] = layer.hu
        return hu

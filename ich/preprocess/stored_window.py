"""Series stored in a display window (HU clipped to, say, -20..100), made safe to resample.

Some exports and public data sets keep only a brain window: bone and air are flat at the
window's edges. Resampling such a volume blends the flat 100 HU skull with 30 HU brain into a
60-100 HU rim along the inner table, which looks exactly like a thin extra-axial bleed. Before
any interpolation, the voxels at the ceiling are set to bone and those at the floor to air
(:meth:`StoredWindow.restore`), so edges blend as they do in a full-range series and no rim
forms; the windows the detector sees then look as they would on full-range data, but for the
flat texture inside bone. :meth:`StoredWindow.simulate` does the same to a full-range volume,
which is how training teaches the detector both kinds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BONE_HU = 1000.0
"""What a voxel at the window's ceiling becomes: the skull, as a full-range series shows it."""
AIR_HU = -1000.0
"""What a voxel at the window's floor becomes."""
_MIN_CEILING_HU = 60.0
"""A window whose ceiling is below acute blood is no brain window: leave it as it is."""
_MAX_CEILING_HU = 400.0
"""A series whose brightest voxel is below this holds no bone as stored: it was windowed."""
_MIN_FLOOR_HU = -300.0
"""A series whose darkest voxel is above this holds no air as stored: it was windowed."""
_MIN_FLAT_FRACTION = 0.002
"""Share of voxels that must sit exactly at the ceiling (the skull), and at the floor (air),
to call it a window."""


@dataclass(frozen=True)
class StoredWindow:
    """The HU range a series was clipped to when it was stored."""

    floor: float
    ceiling: float

    @classmethod
    def detect(cls, hu: np.ndarray) -> StoredWindow | None:
        """The window ``hu`` was clipped to, or None for a full-range series.

        A windowed head has neither bone nor air as stored, and is flat at both ends: a fair
        share of voxels exactly at its maximum (the skull) and at its minimum (air).
        """
        if hu.size == 0:
            return None
        ceiling, floor = float(hu.max()), float(hu.min())
        if not (_MIN_FLOOR_HU < floor < ceiling and _MIN_CEILING_HU <= ceiling < _MAX_CEILING_HU):
            return None
        sample = hu[:, ::4, ::4] if hu.ndim == 3 else hu
        for edge in (ceiling, floor):
            if np.mean(sample == edge) < _MIN_FLAT_FRACTION:
                return None
        return cls(floor, ceiling)

    def restore(self, hu: np.ndarray) -> np.ndarray:
        """float32 ``hu`` with the ceiling as bone and the floor as air, ready to resample."""
        out = np.asarray(hu, dtype=np.float32).copy()
        out[hu >= self.ceiling] = BONE_HU
        out[hu <= self.floor] = AIR_HU
        return out

    def simulate(self, hu: np.ndarray) -> np.ndarray:
        """A full-range ``hu`` as it would arrive windowed and be restored (for training)."""
        return self.restore(np.clip(hu, self.floor, self.ceiling))

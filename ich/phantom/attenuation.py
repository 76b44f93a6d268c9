"""Hounsfield units of the phantom's tissues, drawn per study.

Ranges follow published non-contrast head CT values: grey matter 35-45 HU, white matter
25-32 HU, CSF 0-15 HU, cortical bone well above 1000 HU. Each study draws its own values
(scanner calibration and patients differ) and each tissue gets a texture of its own amplitude
(diploe is far more heterogeneous than brain).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ich.phantom.anatomy import Anatomy, Tissue
from ich.phantom.fields import smooth_noise

_RANGES: dict[Tissue, tuple[float, float, float]] = {
    # tissue: (low, high, texture sd)
    Tissue.AIR: (-1000.0, -1000.0, 0.0),
    Tissue.SKIN: (35.0, 55.0, 6.0),
    Tissue.FAT: (-110.0, -80.0, 12.0),
    Tissue.MUSCLE: (40.0, 60.0, 5.0),
    Tissue.CORTICAL_BONE: (1100.0, 1600.0, 160.0),
    Tissue.DIPLOE: (450.0, 800.0, 180.0),
    Tissue.AIR_CELLS: (-950.0, -850.0, 40.0),
    Tissue.CSF: (6.0, 13.0, 1.0),
    Tissue.VENTRICLE: (4.0, 11.0, 0.6),
    Tissue.GREY: (37.0, 43.0, 1.2),
    Tissue.WHITE: (27.5, 32.5, 1.0),
    Tissue.DEEP_GREY: (35.0, 40.0, 1.2),
    Tissue.BRAINSTEM: (30.0, 35.0, 1.2),
    Tissue.CEREBELLUM: (32.0, 37.0, 1.5),
    Tissue.DURA: (40.0, 52.0, 2.0),
    Tissue.CALCIFICATION: (150.0, 400.0, 60.0),
    Tissue.ORBIT_FAT: (-105.0, -80.0, 10.0),
    Tissue.GLOBE: (5.0, 15.0, 1.5),
    Tissue.LENS: (80.0, 120.0, 5.0),
}


@dataclass(frozen=True)
class TissueHU:
    """Mean HU and texture amplitude of every tissue for one study."""

    mean: np.ndarray
    """float32 lookup table indexed by :class:`Tissue`."""
    texture_sd: np.ndarray

    @classmethod
    def sample(cls, rng: np.random.Generator) -> TissueHU:
        size = max(Tissue) + 1
        mean = np.zeros(size, dtype=np.float32)
        sd = np.zeros(size, dtype=np.float32)
        for tissue, (low, high, texture) in _RANGES.items():
            mean[tissue] = rng.uniform(low, high)
            sd[tissue] = texture
        # Keep the grey-white contrast within what scanners show (4-12 HU).
        mean[Tissue.WHITE] = min(mean[Tissue.WHITE], mean[Tissue.GREY] - 6.0)
        mean[Tissue.DEEP_GREY] = min(mean[Tissue.DEEP_GREY], mean[Tissue.GREY])
        return cls(mean, sd)


def to_hu(anatomy: Anatomy, table: TissueHU, rng: np.random.Generator) -> np.ndarray:
    """float32 HU of the head-frame grid: tissue means plus per-tissue texture."""
    tissue = anatomy.tissue
    texture = smooth_noise(tissue.shape, 2.5 / anatomy.grid.spacing_mm[0], rng)
    return table.mean[tissue] + table.texture_sd[tissue] * texture

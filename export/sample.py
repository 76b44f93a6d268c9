"""Realistic detector input for parity checks: blocks of a synthetic study with blood.

Uniform noise can leave a detector with nothing to find, and parity on zero detections
proves nothing; a phantom head with hemorrhage gives detections of every kind of output.
"""

from __future__ import annotations

import numpy as np

from ich.phantom.generate import CaseOptions, synthesize
from ich.preprocess import BLOCK_PLANES, InputSpec, ModelGrid, blocks, model_input

SEED = 424_242
"""Outside every training, validation and test seed."""


def sample_blocks(spec: InputSpec, count: int = 2) -> np.ndarray:
    """float32 (count, windows, BLOCK_PLANES + context - 1, size, size) from one study."""
    case = synthesize(SEED, 0, CaseOptions(prevalence=1.0, slice_mm=5.0, gantry_tilt_deg=0.0))
    pixel = case.spec.pixel_spacing_mm
    grid = ModelGrid.fit(case.hu, (case.spec.table_increment_mm, pixel, pixel), spec)
    cut = blocks(model_input(grid.hu_planes(case.hu), spec), spec.context, BLOCK_PLANES)
    return np.ascontiguousarray(np.resize(cut, (count, *cut.shape[1:])))

"""Augmentation of one training stack: geometry (flip, rotation, scale, shift) and HU (gain,
offset, noise), applied before windowing as a scanner would vary them."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from ich.preprocess.grid import AIR_HU


def augment(
    hu: np.ndarray, label: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(context, S, S) float32 HU and its centre plane's (S, S) label, transformed alike."""
    if rng.random() < 0.5:
        hu, label = hu[:, :, ::-1], label[:, ::-1]
    if rng.random() < 0.8:
        angle = math.radians(rng.uniform(-12.0, 12.0))
        scale = rng.uniform(0.9, 1.1)
        shift = rng.uniform(-10.0, 10.0, size=2)
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        matrix = np.array([[cos, -sin], [sin, cos]])
        centre = (np.array(label.shape) - 1) / 2
        offset = centre - matrix @ (centre + shift)
        hu = np.stack([
            ndi.affine_transform(p, matrix, offset, order=1, cval=AIR_HU, prefilter=False)
            for p in hu
        ])  # fmt: skip
        label = ndi.affine_transform(label, matrix, offset, order=0, cval=0, prefilter=False)
    hu = np.ascontiguousarray(hu, dtype=np.float32)
    # Calibration drift: a few HU of offset and a percent or two of gain around water.
    hu = hu * rng.uniform(0.98, 1.02) + rng.uniform(-5.0, 5.0)
    if rng.random() < 0.5:
        hu += rng.normal(0.0, rng.uniform(1.0, 5.0), size=hu.shape).astype(np.float32)
    return hu, np.ascontiguousarray(label)

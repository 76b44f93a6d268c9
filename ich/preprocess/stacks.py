"""HU windows as channels and 5-plane stacks: the detector's input tensor, built in numpy."""

from __future__ import annotations

import numpy as np

from ich.preprocess.spec import InputSpec


def windowed(hu: np.ndarray, windows: tuple[tuple[float, float], ...]) -> np.ndarray:
    """float32 (windows, *hu.shape) in [0, 1], one clinical window each."""
    out = np.empty((len(windows), *hu.shape), dtype=np.float32)
    for w, (level, width) in enumerate(windows):
        np.subtract(hu, level - width / 2, out=out[w], casting="unsafe")
        out[w] *= 1.0 / width
    return np.clip(out, 0.0, 1.0, out=out)


def stack_indices(planes: int, context: int, centres: np.ndarray | None = None) -> np.ndarray:
    """int (len(centres), context): the planes of each stack, edges repeated."""
    centres = np.arange(planes) if centres is None else np.asarray(centres)
    offsets = np.arange(context) - context // 2
    return np.clip(centres[:, None] + offsets[None, :], 0, planes - 1)


def model_input(
    hu_planes: np.ndarray, spec: InputSpec, centres: np.ndarray | None = None
) -> np.ndarray:
    """float32 (stacks, windows x context, size, size) from model-grid HU (planes, size, size).

    Channels are window-major: channel ``w * context + s`` is window ``w`` of stack plane
    ``s``, the layout the backbone unfolds into (windows, context) for its 3D stages.
    """
    win = windowed(hu_planes, spec.windows)
    index = stack_indices(hu_planes.shape[0], spec.context, centres)
    stacks = win[:, index]  # (windows, stacks, context, rows, cols)
    stacks = stacks.transpose(1, 0, 2, 3, 4)
    return np.ascontiguousarray(stacks.reshape(len(index), spec.channels, *hu_planes.shape[1:]))

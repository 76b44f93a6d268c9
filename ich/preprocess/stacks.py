"""HU windows as channels and 5-plane stacks: the detector's input tensor, built in numpy."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def model_input(hu_planes: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The detector's input: float32 (windows, planes + context - 1, size, size).

    The windowed series with its first and last planes repeated ``context // 2`` times, so
    the stack of every plane, edges included, is a window of it. (A training stack of plane
    ``p`` is ``model_input(...)[:, p : p + context]`` flattened window-major.)
    """
    half = spec.context // 2
    index = np.clip(np.arange(-half, len(hu_planes) + half), 0, len(hu_planes) - 1)
    return windowed(hu_planes[index], spec.windows)


BLOCK_PLANES = 16
"""Model planes the detector predicts per block: a block carries them with their context."""
BLOCKS_PER_CALL = 2
"""Blocks per forward pass of the detector on CPU (32 planes: memory stays near 1 GB)."""


def blocks(series: np.ndarray, context: int, planes: int = BLOCK_PLANES) -> np.ndarray:
    """float32 (blocks, windows, planes + context - 1, size, size): a :func:`model_input`
    series cut into blocks of ``planes`` predicted planes, overlapping by their context.

    The detector's batch dimension: blocks of one study or of several are batched alike. The
    last block is filled up by repeating the series' final plane; its extra outputs are
    dropped (:meth:`DetectorOutputs.from_blocks`).
    """
    predicted = series.shape[1] - context + 1
    if predicted < 1:
        have = series.shape[1]
        raise ValueError(f"a series needs at least {context} planes (its context), got {have}")
    count = -(-predicted // planes)
    index = np.arange(count)[:, None] * planes + np.arange(planes + context - 1)[None, :]
    index = np.minimum(index, series.shape[1] - 1)
    return np.ascontiguousarray(series[:, index].transpose(1, 0, 2, 3, 4))


def run_blocks(
    forward: Callable[[np.ndarray], Sequence[np.ndarray]], series_blocks: np.ndarray, per_call: int
) -> list[np.ndarray]:
    """The detector's outputs (blocks, P, ...) for ``series_blocks``, ``per_call`` blocks a
    ``forward`` call, so memory stays bounded on long series. ``ich analyze`` and the Triton
    detector step both run a study through here, in the same batches."""
    parts = [
        forward(series_blocks[i : i + per_call]) for i in range(0, len(series_blocks), per_call)
    ]
    return [np.concatenate(column) for column in zip(*parts, strict=True)]

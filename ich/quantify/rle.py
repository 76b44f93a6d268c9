"""Mask encodings of the results: run lengths per plane, and a compressed label volume."""

from __future__ import annotations

import base64
import zlib

import numpy as np


def encode_rle(mask: np.ndarray) -> list[int]:
    """Alternating run lengths of 0 and 1 over the row-major pixels, starting with a 0-run
    (which is 0 when the first pixel is set)."""
    flat = np.asarray(mask, dtype=bool).ravel()
    if flat.size == 0:
        return []
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def decode_rle(runs: list[int], shape: tuple[int, int]) -> np.ndarray:
    """The boolean mask of ``shape`` that :func:`encode_rle` produced ``runs`` from.

    Raises:
        ValueError: the runs do not cover exactly ``shape``.
    """
    total = int(np.prod(shape))
    if sum(runs) != total or any(r < 0 for r in runs):
        raise ValueError(f"run lengths sum to {sum(runs)}, expected {total} for shape {shape}")
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape(shape)


def encode_label_volume(label: np.ndarray) -> str:
    """A uint8 label volume as zlib-compressed, base64 text (a few kB for a typical study)."""
    return base64.b64encode(
        zlib.compress(np.ascontiguousarray(label, np.uint8).tobytes(), 6)
    ).decode()


def decode_label_volume(text: str, shape: tuple[int, int, int]) -> np.ndarray:
    """The label volume :func:`encode_label_volume` wrote, given its (z, y, x) shape.

    Raises:
        ValueError: the text does not hold exactly ``shape`` voxels.
    """
    raw = zlib.decompress(base64.b64decode(text))
    if len(raw) != int(np.prod(shape)):
        raise ValueError(f"label volume holds {len(raw)} voxels, expected {shape}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape).copy()

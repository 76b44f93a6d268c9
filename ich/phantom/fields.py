"""The head-frame voxel grid and the smooth random fields the anatomy is carved from.

Anatomy is built once on an axis-aligned 1 mm grid in the head's own frame (x left,
y posterior, z superior, origin near the centre of the brain). Axis-aligned shapes then cost a
few broadcast operations on open grids instead of full coordinate arrays, which keeps a whole
head under half a second; the scanner later samples this grid on its own, possibly tilted,
planes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HeadGrid:
    """An axis-aligned grid in head-frame mm; arrays on it are indexed (z, y, x)."""

    lower_mm: tuple[float, float, float] = (-84.0, -110.0, -82.0)
    """(x, y, z) of voxel (0, 0, 0)."""
    upper_mm: tuple[float, float, float] = (84.0, 106.0, 90.0)
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """(x, y, z) voxel size."""

    @property
    def shape(self) -> tuple[int, int, int]:
        nx, ny, nz = (
            round((hi - lo) / s) + 1
            for lo, hi, s in zip(self.lower_mm, self.upper_mm, self.spacing_mm, strict=True)
        )
        return nz, ny, nx

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing_mm)) / 1000.0

    def axes(self, box: tuple[slice, slice, slice] | None = None) -> tuple[np.ndarray, ...]:
        """Open-grid coordinates (z, y, x) in mm, broadcastable to the (boxed) grid."""
        box = box or tuple(slice(0, n) for n in self.shape)
        out = []
        for axis, (n, part) in enumerate(zip(self.shape, box, strict=True)):
            xyz = 2 - axis
            values = self.lower_mm[xyz] + self.spacing_mm[xyz] * np.arange(n, dtype=np.float32)
            shape = [1, 1, 1]
            shape[axis] = -1
            out.append(values[part].astype(np.float32).reshape(shape))
        return tuple(out)

    def box(
        self, lower: tuple[float, float, float], upper: tuple[float, float, float]
    ) -> tuple[slice, slice, slice]:
        """Index slices (z, y, x) of the voxels inside the (x, y, z) mm box, clipped to the grid."""
        out = []
        for axis, size in enumerate(self.shape):
            xyz = 2 - axis
            step = self.spacing_mm[xyz]
            lo = int(np.floor((lower[xyz] - self.lower_mm[xyz]) / step))
            hi = int(np.ceil((upper[xyz] - self.lower_mm[xyz]) / step)) + 1
            out.append(slice(min(max(lo, 0), size), min(max(hi, 0), size)))
        return tuple(out)  # type: ignore[return-value]

    def index_of(self, points_mm: np.ndarray) -> np.ndarray:
        """Fractional (z, y, x) indices of head-frame points (..., 3) given as (x, y, z)."""
        lower = np.asarray(self.lower_mm, dtype=np.float64)
        step = np.asarray(self.spacing_mm, dtype=np.float64)
        return ((np.asarray(points_mm) - lower) / step)[..., ::-1]


def _bspline_upsample(coarse: np.ndarray, axis: int, size: int, factor: float) -> np.ndarray:
    """Cubic B-spline interpolation of ``coarse`` along one axis up to ``size`` samples."""
    position = np.arange(size, dtype=np.float32) / factor + 1.0
    index = np.floor(position).astype(np.intp)
    t = (position - index).astype(np.float32)
    weights = (
        (1 - t) ** 3 / 6,
        (3 * t**3 - 6 * t**2 + 4) / 6,
        (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6,
        t**3 / 6,
    )
    shape = [1] * coarse.ndim
    shape[axis] = size
    out = np.zeros((*coarse.shape[:axis], size, *coarse.shape[axis + 1 :]), dtype=np.float32)
    for tap, weight in enumerate(weights):
        out += np.take(coarse, index + tap - 1, axis=axis) * weight.reshape(shape)
    return out


def smooth_noise(
    shape: tuple[int, ...],
    feature_vox: float | tuple[float, ...],
    rng: np.random.Generator,
) -> np.ndarray:
    """Zero-mean, unit-variance random field whose features are about ``feature_vox`` wide
    (one width, or one per axis for elongated features).

    White noise on a coarse lattice, B-spline interpolated axis by axis: a band-limited field
    at the cost of a few passes over the output, several times cheaper than filtering.
    """
    widths = np.broadcast_to(np.asarray(feature_vox, dtype=float), (len(shape),))
    factors = [max(w / 2.0, 1.0) for w in widths]
    field = rng.standard_normal(
        tuple(int(np.ceil(n / f)) + 3 for n, f in zip(shape, factors, strict=True)),
        dtype=np.float32,
    )
    for axis in reversed(range(len(shape))):
        field = _bspline_upsample(field, axis, shape[axis], factors[axis])
    field -= field.mean()
    return field / max(float(field.std()), 1e-6)


def upsample2(planes: np.ndarray) -> np.ndarray:
    """Bilinear 2x in-plane upsampling of (z, y, x) planes, pixel centres preserved."""

    def along(a: np.ndarray, axis: int) -> np.ndarray:
        a = np.moveaxis(a, axis, -1)
        out = np.empty((*a.shape[:-1], 2 * a.shape[-1]), dtype=a.dtype)
        padded = np.concatenate([a[..., :1], a, a[..., -1:]], axis=-1)
        out[..., 0::2] = 0.75 * a + 0.25 * padded[..., :-2]
        out[..., 1::2] = 0.75 * a + 0.25 * padded[..., 2:]
        return np.moveaxis(out, -1, axis)

    return along(along(planes, 1), 2)

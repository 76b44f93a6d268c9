"""The model grid: the analysed volume as the detector sees it, and the way back.

The detector works on square planes of fixed pixel size (``InputSpec.pixel_mm``), so a bleed
has the same size in pixels whatever the scanner's field of view. Thin series are averaged
into slabs about ``slab_mm`` thick, the thickness the detector was trained on, as a reader
would page through thick reconstructions. Everything the detector finds is mapped back onto
the ingested volume, where volumes are measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ich.preprocess.spec import InputSpec
from ich.preprocess.stored_window import StoredWindow

AIR_HU = -1024.0
_BRAIN_HU = (0.0, 100.0)
"""Voxels in this range locate the head: the model plane is centred on them."""


@dataclass(frozen=True)
class ModelGrid:
    """How model planes sit on a volume: slab grouping in z, scale and centre in plane."""

    spec: InputSpec
    volume_shape: tuple[int, int, int]
    group: int
    """Volume planes averaged into one model plane."""
    scale: tuple[float, float]
    """Volume pixels per model pixel, (rows, columns)."""
    centre: tuple[float, float]
    """Volume pixel (row, column) under the centre of the model plane."""
    window: StoredWindow | None = None
    """The display window the series was stored in, if it was (bone and air are restored)."""

    @classmethod
    def fit(
        cls, hu: np.ndarray, spacing_mm: tuple[float, float, float], spec: InputSpec
    ) -> ModelGrid:
        """The grid for a volume ``hu`` (z, y, x) with voxel size ``spacing_mm``."""
        if hu.ndim != 3 or min(hu.shape) < 1:
            raise ValueError(f"expected a (planes, rows, columns) volume, got shape {hu.shape}")
        group = max(1, round(spec.slab_mm / spacing_mm[0])) if spacing_mm[0] > 0 else 1
        scale = (spec.pixel_mm / spacing_mm[1], spec.pixel_mm / spacing_mm[2])
        return cls(spec, tuple(hu.shape), group, scale, _head_centre(hu), StoredWindow.detect(hu))  # type: ignore[arg-type]

    @property
    def planes(self) -> int:
        return math.ceil(self.volume_shape[0] / self.group)

    def slab(self, plane: int) -> range:
        """The volume planes behind model plane ``plane``."""
        return range(plane * self.group, min(self.volume_shape[0], (plane + 1) * self.group))

    def _slab_mean(self, volume: np.ndarray) -> np.ndarray:
        if self.group == 1:
            return volume.astype(np.float32, copy=False)
        n = volume.shape[0]
        pad = self.planes * self.group - n
        sums = np.add.reduceat(volume.astype(np.float32), np.arange(0, n, self.group), axis=0)
        counts = np.full(self.planes, float(self.group), dtype=np.float32)
        counts[-1] -= pad
        return sums / counts[:, None, None]

    def _resample(self, planes: np.ndarray, fill: float) -> np.ndarray:
        """float32 (planes, size, size): ``planes`` (planes, rows, cols) on the model grid.

        Shrinking by two or more first averages whole blocks of pixels, so noise and thin
        structures are not aliased by point sampling.
        """
        factors = [max(1, round(s)) if s >= 1.5 else 1 for s in self.scale]
        rows, cols = planes.shape[1:]
        if factors != [1, 1]:
            fr, fc = factors
            cropped = planes[:, : rows // fr * fr, : cols // fc * fc]
            planes = cropped.reshape(len(planes), rows // fr, fr, cols // fc, fc).mean(axis=(2, 4))
        half = (self.spec.size - 1) / 2
        matrix = np.diag([self.scale[0] / factors[0], self.scale[1] / factors[1]])
        offset = [
            (self.centre[a] - half * self.scale[a] - (factors[a] - 1) / 2) / factors[a]
            for a in (0, 1)
        ]
        out = np.empty((len(planes), self.spec.size, self.spec.size), dtype=np.float32)
        for k, plane in enumerate(planes):
            ndi.affine_transform(
                plane, matrix, offset, output=out[k], output_shape=out.shape[1:],
                order=1, mode="constant", cval=fill, prefilter=False,
            )  # fmt: skip
        return out

    def hu_planes(self, hu: np.ndarray) -> np.ndarray:
        """float32 (planes, size, size) HU on the model grid; air beyond the volume.

        A series stored in a display window has its flat bone and air restored first, so
        resampling draws no rim of blood-like HU along the skull (see ``stored_window``).
        """
        self._check(hu)
        if self.window is not None:
            hu = self.window.restore(hu)
        return self._resample(self._slab_mean(hu), AIR_HU)

    def coverage(self, mask: np.ndarray) -> np.ndarray:
        """float32 (planes, size, size): the share of each model pixel (over its slab and
        area) that ``mask`` covers."""
        self._check(mask)
        return self._resample(self._slab_mean(mask), 0.0)

    def labels(self, label: np.ndarray, classes: int = 3) -> np.ndarray:
        """uint8 (planes, size, size): a class label volume on the model grid.

        A model pixel is blood where at least half of it (over its slab and area) was, and
        takes the class with the largest share there.
        """
        self._check(label)
        fractions = np.stack([self.coverage(label == c) for c in range(1, classes + 1)])
        out = (np.argmax(fractions, axis=0) + 1).astype(np.uint8)
        out[fractions.sum(axis=0) < 0.5] = 0
        return out

    def volume_mask(self, mask: np.ndarray, box: np.ndarray) -> np.ndarray:
        """bool (rows, cols) on a volume plane: where a detection's mask probability >= 0.5.

        ``mask`` is the head's (M, M) probability over ``box`` (x1, y1, x2, y2 in model
        pixels, pixel centres at integers). Each volume pixel in the box is sampled from it
        directly, so masks are as fine as the volume's own pixels, not the model's.
        """
        rows, cols = self.volume_shape[1:]
        x1, y1, x2, y2 = (float(v) for v in box)
        r0, r1 = self._span(y1, y2, 0, rows)
        c0, c1 = self._span(x1, x2, 1, cols)
        out = np.zeros((rows, cols), dtype=bool)
        if r0 >= r1 or c0 >= c1 or x2 <= x1 or y2 <= y1:
            return out
        half = (self.spec.size - 1) / 2
        y = (np.arange(r0, r1, dtype=np.float32) - self.centre[0]) / self.scale[0] + half
        x = (np.arange(c0, c1, dtype=np.float32) - self.centre[1]) / self.scale[1] + half
        out[r0:r1, c0:c1] = _box_mask(mask, box, y, x)
        return out

    def model_mask(self, mask: np.ndarray, box: np.ndarray) -> np.ndarray:
        """bool (size, size): the same detection on its model plane."""
        size = self.spec.size
        x1, y1, x2, y2 = (float(v) for v in box)
        r0, r1 = max(0, math.floor(y1) - 1), min(size, math.ceil(y2) + 2)
        c0, c1 = max(0, math.floor(x1) - 1), min(size, math.ceil(x2) + 2)
        out = np.zeros((size, size), dtype=bool)
        if r0 >= r1 or c0 >= c1 or x2 <= x1 or y2 <= y1:
            return out
        y = np.arange(r0, r1, dtype=np.float32)
        x = np.arange(c0, c1, dtype=np.float32)
        out[r0:r1, c0:c1] = _box_mask(mask, box, y, x)
        return out

    def _span(self, low: float, high: float, axis: int, limit: int) -> tuple[int, int]:
        half = (self.spec.size - 1) / 2
        # From ``low`` to ``high`` in model pixel coordinates, with a pixel of margin.
        start = self.centre[axis] + (low - 1 - half) * self.scale[axis]
        stop = self.centre[axis] + (high + 1 - half) * self.scale[axis]
        return max(0, math.floor(start)), min(limit, math.ceil(stop) + 1)

    def _check(self, volume: np.ndarray) -> None:
        if tuple(volume.shape) != self.volume_shape:
            raise ValueError(f"volume {volume.shape} does not match the grid {self.volume_shape}")


def _box_mask(mask: np.ndarray, box: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """bool (len(y), len(x)): the (M, M) mask probability over ``box`` sampled at model pixel
    coordinates ``y`` (rows) and ``x`` (columns), >= 0.5.

    Cell ``j`` sits at ``x1 + (j + 0.5) * (x2 - x1) / M``, where RoIAlign took its training
    target from; one cell of zero padding surrounds the mask, as torchvision pastes it.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    m = mask.shape[0]
    v = (y - y1) / (y2 - y1) * m - 0.5 + 1
    u = (x - x1) / (x2 - x1) * m - 0.5 + 1
    vv, uu = np.meshgrid(v, u, indexing="ij")
    padded = np.pad(mask.astype(np.float32, copy=False), 1)
    sampled = ndi.map_coordinates(padded, [vv, uu], order=1, mode="constant", cval=0.0)
    return sampled >= 0.5


def _head_centre(hu: np.ndarray) -> tuple[float, float]:
    """Row and column of the middle of the brain-density voxels (the image centre if none)."""
    step = 4
    sample = hu[:, ::step, ::step]
    inside = (sample >= _BRAIN_HU[0]) & (sample <= _BRAIN_HU[1])
    rows, cols = np.nonzero(inside.any(axis=0))
    if len(rows) == 0:
        return ((hu.shape[1] - 1) / 2, (hu.shape[2] - 1) / 2)
    weights = inside.sum(axis=0)[rows, cols]
    return (
        float(np.average(rows, weights=weights) * step),
        float(np.average(cols, weights=weights) * step),
    )

"""The scanner: head pose, acquisition protocol, slice sampling, partial volume and noise.

The head-frame grid is sampled on the series' own planes in patient space (gantry tilt and
head rotation included), each plane averaged over its slice thickness, then quantum noise with
a kernel-dependent texture is added at full resolution. Sampling runs at half the in-plane
resolution and is upsampled: a 0.9 mm sampling of a 1 mm grid loses nothing, and it halves
the cost of the most expensive step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)
from scipy import ndimage as ndi

from ich.phantom.fields import HeadGrid, upsample2

SOFT_KERNELS = (
    ("GE MEDICAL SYSTEMS", "STANDARD", 1.0),
    ("GE MEDICAL SYSTEMS", "SOFT", 1.25),
    ("SIEMENS", "H30s", 0.95),
    ("SIEMENS", "J40s", 0.8),
    ("TOSHIBA", "FC21", 1.05),
    ("Philips", "UB", 1.1),
)
"""(manufacturer, kernel, noise grain in pixels): smoother kernels give coarser noise."""
TRANSFER_SYNTAXES = (
    (ExplicitVRLittleEndian, 0.4),
    (ImplicitVRLittleEndian, 0.1),
    (DeflatedExplicitVRLittleEndian, 0.1),
    (JPEGLSLossless, 0.2),
    (JPEG2000Lossless, 0.1),
    (RLELossless, 0.1),
)
"""Transfer syntaxes of the analysable series and how often each is drawn; the compressed
ones are the lossless codecs pydicom can encode (JPEG Lossless Process 14 it cannot)."""
THICKNESSES = ((5.0, 0.6), (2.5, 0.25), (1.25, 0.08), (0.625, 0.07))


Region = tuple[slice, slice, slice]
"""A block of the series: (slices, rows, columns)."""


@dataclass(frozen=True)
class HeadPose:
    """Rigid placement of the head frame in patient space: ``p = rotation @ q + offset``."""

    rotation: np.ndarray
    offset: np.ndarray

    @classmethod
    def sample(cls, rng: np.random.Generator) -> HeadPose:
        yaw, pitch, roll = (math.radians(a) for a in rng.uniform((-7, -8, -5), (7, 18, 5)))
        cz, sz = math.cos(yaw), math.sin(yaw)
        cx, sx = math.cos(pitch), math.sin(pitch)
        cy, sy = math.cos(roll), math.sin(roll)
        about_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
        about_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
        about_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        offset = np.array([rng.uniform(-8, 8), rng.uniform(-10, 10), 0.0])
        return cls(about_z @ about_x @ about_y, offset)

    def to_head(self, points: np.ndarray) -> np.ndarray:
        """Head-frame coordinates of patient points (..., 3)."""
        return (np.asarray(points) - self.offset) @ self.rotation

    def to_patient(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points) @ self.rotation.T + self.offset


@dataclass(frozen=True)
class ScanProtocol:
    """Acquisition and reconstruction parameters of the soft-tissue axial series."""

    matrix: int
    pixel_spacing_mm: float
    slice_mm: float
    gantry_tilt_deg: float
    manufacturer: str
    kernel: str
    rescale_intercept: float
    transfer_syntax: str
    noise_sd_hu: float
    """Quantum noise in brain at this thickness and kernel."""
    noise_grain_px: float = 1.0
    """Correlation length of the noise (Gaussian sigma, pixels), set by the kernel."""

    @classmethod
    def sample(
        cls,
        rng: np.random.Generator,
        fov_mm: float,
        slice_mm: float | None = None,
        matrix: int = 512,
        transfer_syntax: str | None = None,
        tilt_deg: float | None = None,
    ) -> ScanProtocol:
        if slice_mm is None:
            values, weights = zip(*THICKNESSES, strict=True)
            slice_mm = float(rng.choice(values, p=weights))
        if transfer_syntax is None:
            syntaxes, weights = zip(*TRANSFER_SYNTAXES, strict=True)
            transfer_syntax = str(rng.choice(syntaxes, p=weights))
        # The field of view is set to hold the head: small heads get small pixels.
        smallest = max(0.4, fov_mm / 512)
        manufacturer, kernel, grain = SOFT_KERNELS[rng.integers(len(SOFT_KERNELS))]
        tilt = float(rng.uniform(5.0, 22.0)) if rng.random() < 0.2 else 0.0
        tilt = tilt if tilt_deg is None else tilt_deg
        return cls(
            matrix=matrix,
            pixel_spacing_mm=float(rng.uniform(smallest, max(smallest, 0.55))) * 512 / matrix,
            slice_mm=slice_mm,
            gantry_tilt_deg=tilt,
            manufacturer=manufacturer,
            kernel=kernel,
            rescale_intercept=-1024.0 if rng.random() < 0.75 else 0.0,
            transfer_syntax=transfer_syntax,
            noise_sd_hu=float(rng.uniform(2.4, 4.0)) * math.sqrt(5.0 / slice_mm),
            noise_grain_px=grain,
        )


@dataclass(frozen=True)
class Planes:
    """The series' slice planes in patient space (LPS mm)."""

    origins: np.ndarray
    """(slices, 3) position of pixel (0, 0) of each slice."""
    row_dir: np.ndarray
    """Direction of increasing column index (along a row)."""
    col_dir: np.ndarray
    """Direction of increasing row index (down a column)."""
    pixel_mm: float
    matrix: int

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_dir, self.col_dir)

    def points(self, step: int = 1) -> np.ndarray:
        """Patient coordinates (slices, rows, columns, 3) of pixel centres, every ``step``-th.

        With ``step`` 2 each sample sits between two full-resolution pixels, the centre that
        :func:`~ich.phantom.fields.upsample2` expects.
        """
        offset = (step - 1) / 2
        ij = (np.arange(self.matrix // step) * step + offset) * self.pixel_mm
        in_plane = ij[:, None, None] * self.col_dir + ij[None, :, None] * self.row_dir
        return self.origins[:, None, None, :] + in_plane[None]


def slab_kernel(thickness_vox: float) -> np.ndarray:
    """Box weights of a slice profile ``thickness_vox`` wide on a unit grid, summing to one."""
    half = thickness_vox / 2
    reach = math.ceil(half - 0.5)
    offsets = np.arange(-reach, reach + 1)
    weights = np.clip(np.minimum(offsets + 0.5, half) - np.maximum(offsets - 0.5, -half), 0, 1)
    return weights / weights.sum()


def slab_average(volume: np.ndarray, axis: int, thickness_vox: float) -> np.ndarray:
    """``volume`` averaged over a slice profile ``thickness_vox`` wide along ``axis``."""
    if thickness_vox <= 1.0:
        return volume
    return ndi.correlate1d(volume, slab_kernel(thickness_vox), axis=axis, mode="nearest")


class Renderer:
    """Samples head-frame volumes on a series' planes, slice thickness included.

    Averaging over the slice runs along the grid axis nearest the plane normal instead of the
    exact normal: that shifts the slab's far edges by ``thickness/2 * tan(angle)``; head pitch
    and gantry tilt together reach about 33 degrees (95th percentile), 1.6 mm at 5 mm slices,
    below the blur of the slice itself.
    """

    def __init__(self, grid: HeadGrid, pose: HeadPose, planes: Planes, slice_mm: float) -> None:
        self.grid = grid
        self.pose = pose
        self.planes = planes
        self.slice_mm = slice_mm
        head_normal = pose.rotation.T @ planes.normal
        self.axis = 2 - int(np.argmax(np.abs(head_normal)))
        self.thickness_vox = slice_mm / grid.spacing_mm[2 - self.axis]
        index = grid.index_of(pose.to_head(planes.points(step=2)))
        self.coords = np.moveaxis(index, -1, 0).astype(np.float32)
        """(3, slices, rows/2, columns/2) grid indices of the half-resolution samples."""

    @property
    def reach(self) -> int:
        return len(slab_kernel(self.thickness_vox)) // 2

    def render(self, volume: np.ndarray, outside: float) -> np.ndarray:
        """Full-resolution planes of a whole-grid volume."""
        slab = slab_average(volume, self.axis, self.thickness_vox)
        half = ndi.map_coordinates(slab, self.coords, order=1, cval=outside, prefilter=False)
        return upsample2(half)

    def render_patch(
        self, fields: list[np.ndarray], box: tuple[slice, slice, slice]
    ) -> tuple[Region, list[np.ndarray]] | None:
        """Full-resolution planes of fields that are zero outside ``box``, as one region of
        the series and a block per field (None when the box misses every plane).

        Only the planes and pixels near the box are sampled and upsampled: a lesion costs
        what its size costs, not what the series costs.
        """
        pad = [(0, 0)] * 3
        pad[self.axis] = (self.reach + 1, self.reach + 1)
        start = np.array([s.start - before for s, (before, _) in zip(box, pad, strict=True)])
        stop = (
            start
            + np.array([s.stop - s.start for s in box])
            + 2 * (self.reach + 1) * (np.arange(3) == self.axis)
        )
        lo, hi = start[:, None, None, None] - 1, stop[:, None, None, None]
        near = np.all((self.coords >= lo) & (self.coords <= hi), axis=0)
        if not near.any():
            return None
        (k0, k1), (i0, i1), (j0, j1) = (
            (int(index.min()), int(index.max()) + 1) for index in np.nonzero(near)
        )
        i0, j0 = max(i0 - 1, 0), max(j0 - 1, 0)
        i1, j1 = min(i1 + 1, near.shape[1]), min(j1 + 1, near.shape[2])
        local = self.coords[:, k0:k1, i0:i1, j0:j1] - start[:, None, None, None].astype(np.float32)
        blocks = []
        for values in fields:
            padded = slab_average(np.pad(values, pad), self.axis, self.thickness_vox)
            half = ndi.map_coordinates(padded, local, order=1, cval=0.0, prefilter=False)
            blocks.append(upsample2(half))
        return (slice(k0, k1), slice(2 * i0, 2 * i1), slice(2 * j0, 2 * j1)), blocks


def add_noise(
    planes: np.ndarray,
    protocol: ScanProtocol,
    rng: np.random.Generator,
    slice_boost: np.ndarray,
) -> np.ndarray:
    """Quantum noise with the fine-grained texture of a soft reconstruction kernel.

    ``slice_boost`` scales the noise per slice: the skull base absorbs more photons, so its
    slices are noisier.
    """
    white = rng.standard_normal(planes.shape, dtype=np.float32)
    grain = protocol.noise_grain_px
    textured = ndi.gaussian_filter(white, (0, grain, grain))
    textured *= np.float32(protocol.noise_sd_hu / float(textured.std()))
    textured *= slice_boost[:, None, None].astype(np.float32)
    return planes + textured


def render_exact(
    renderer: Renderer,
    inside: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    allowed: Callable[[np.ndarray], np.ndarray],
    lower_mm: np.ndarray,
    upper_mm: np.ndarray,
) -> tuple[Region, np.ndarray] | None:
    """Full-resolution fraction of an analytic head-frame shape, sampled inside each voxel.

    For lesions smaller than the grid can carry (a punctate bleed is a few voxels of the
    series): every voxel near the shape is sampled 2x2 in-plane and every 0.5 mm through the
    slice. ``allowed`` maps head-frame points (n, 3) to where blood may be.
    """
    planes, pose = renderer.planes, renderer.pose
    ps = planes.pixel_mm
    out = np.zeros((len(planes.origins), planes.matrix, planes.matrix), dtype=np.float32)
    corners = np.array(
        [[x, y, z] for x in (lower_mm[0], upper_mm[0]) for y in (lower_mm[1], upper_mm[1])
         for z in (lower_mm[2], upper_mm[2])]
    )  # fmt: skip
    patient = pose.to_patient(corners)
    through = max(int(np.ceil(renderer.slice_mm / 0.5)), 1)
    t = ((np.arange(through) + 0.5) / through - 0.5) * renderer.slice_mm
    offsets = np.array(
        [tt * planes.normal + a * planes.col_dir + b * planes.row_dir
         for tt in t for a in (-ps / 4, ps / 4) for b in (-ps / 4, ps / 4)]
    )  # fmt: skip
    for k, origin in enumerate(planes.origins):
        rel = patient - origin
        depth = rel @ planes.normal
        if depth.max() < -renderer.slice_mm or depth.min() > renderer.slice_mm:
            continue
        rows = rel @ planes.col_dir / ps
        cols = rel @ planes.row_dir / ps
        i0, i1 = max(int(rows.min()) - 1, 0), min(int(rows.max()) + 2, planes.matrix)
        j0, j1 = max(int(cols.min()) - 1, 0), min(int(cols.max()) + 2, planes.matrix)
        if i0 >= i1 or j0 >= j1:
            continue
        ii, jj = np.mgrid[i0:i1, j0:j1]
        centres = origin + (ii[..., None] * planes.col_dir + jj[..., None] * planes.row_dir) * ps
        head = pose.to_head(centres[..., None, :] + offsets)
        x, y, z = head[..., 0], head[..., 1], head[..., 2]
        hit = inside(z, y, x) & allowed(head)
        out[k, i0:i1, j0:j1] = hit.mean(axis=-1)
    return out_region(out)


def out_region(full: np.ndarray) -> tuple[Region, np.ndarray] | None:
    """The smallest region holding every non-zero value of ``full``, and that block."""
    hit = np.nonzero(full)
    if not hit[0].size:
        return None
    region = tuple(slice(int(i.min()), int(i.max()) + 1) for i in hit)
    return region, full[region]  # type: ignore[return-value]

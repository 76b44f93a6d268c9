"""The analysable volume: HU on a uniform orthogonal grid, with its way back to the source.

Downstream code (the model, quantification, DICOM SEG and SR) needs more than an array: voxel
size for volumes, an affine to patient coordinates, and for every output plane the source SOP
Instance UID it came from. :func:`load_volume` builds all of it from a planned
:class:`~ich.dicom.geometry.SliceGrid`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ich.dicom.geometry import SliceGrid
from ich.dicom.pixels import decode_frames, shift_image
from ich.schema import IngestionWarning

_SAME_PLANE = 1e-3
"""Fraction of the spacing below which a grid plane is taken to be a source slice."""


@dataclass(frozen=True)
class Volume:
    """A CT volume in HU, inferior to superior, in radiological in-plane orientation."""

    hu: np.ndarray
    """int16 array (z, y, x)."""
    spacing_mm: tuple[float, float, float]
    """(z, y, x) voxel size; z is the perpendicular distance between planes."""
    affine: np.ndarray
    """4x4 matrix from voxel index (k, i, j) to patient coordinates (LPS, mm)."""
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    source_sop_instance_uids: tuple[str, ...]
    """The source slices, sorted like the grid."""
    source_frame_numbers: tuple[int | None, ...]
    """1-based frame of each source slice in a multi-frame instance; None for single-frame."""
    plane_source: np.ndarray
    """For each plane, the index of the nearest source slice."""
    plane_is_source: np.ndarray
    """For each plane, True when it is that source slice exactly (not interpolated)."""
    source_shifts_px: np.ndarray
    """Per source slice, the in-plane (row, column) shift that undid gantry-tilt shear."""
    transposed: bool
    flipped_rows: bool
    flipped_columns: bool
    """How the stored images were turned into the radiological in-plane orientation."""
    approximate: bool
    """True when missing tags were replaced by defaults: volumes are then approximate."""
    warnings: tuple[IngestionWarning, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing_mm)) / 1000.0

    def to_source_pixel(self, k: int, i: float, j: float) -> tuple[int, float, float]:
        """The source slice nearest to plane ``k`` and the (row, column) there of pixel (i, j).

        Undoes the shear correction, flips and transposition, so that results drawn on the grid
        (a segmentation) can be written back onto the images as they were sent.
        """
        source = int(self.plane_source[k])
        di, dj = self.source_shifts_px[source]
        row, col = i - di, j - dj
        if self.flipped_columns:
            col = self.hu.shape[2] - 1 - col
        if self.flipped_rows:
            row = self.hu.shape[1] - 1 - row
        if self.transposed:
            row, col = col, row
        return source, float(row), float(col)

    def to_patient(self, kij: np.ndarray) -> np.ndarray:
        """Patient coordinates (LPS, mm) of voxel indices (..., 3) in (k, i, j) order."""
        kij = np.asarray(kij, dtype=float)
        return kij @ self.affine[:3, :3].T + self.affine[:3, 3]


def _canonical(hu: np.ndarray, grid: SliceGrid, index: int) -> np.ndarray:
    """A decoded slice in the grid's in-plane orientation, tilt shear undone, as int16."""
    if grid.transpose:
        hu = hu.T
    if grid.flip_rows:
        hu = hu[::-1]
    if grid.flip_columns:
        hu = hu[:, ::-1]
    di, dj = grid.shifts_px[index]
    return np.rint(shift_image(hu, di, dj)).astype(np.int16)


def _decode_all(grid: SliceGrid) -> np.ndarray:
    """Every source slice, each file decoded once (a multi-frame file holds many slices).

    Sequential on purpose: the JPEG decoders hold the GIL, and threads measured no faster.
    """
    first = grid.instances[0]
    shape = (first.columns, first.rows) if grid.transpose else (first.rows, first.columns)
    out = np.empty((len(grid.instances), *shape), dtype=np.int16)
    by_file: dict[int, list[int]] = defaultdict(list)
    for index, header in enumerate(grid.instances):
        by_file[id(header.source)].append(index)
    for indices in by_file.values():
        planes = decode_frames([grid.instances[i] for i in indices])
        for index, hu in zip(indices, planes, strict=True):
            out[index] = _canonical(hu, grid, index)
    return out


def _resample_z(sources: np.ndarray, grid: SliceGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation of the source planes onto the grid positions.

    A grid plane past the last source slice (at most half a spacing) takes that slice's values
    and is marked as not a source plane.
    """
    positions = grid.source_positions_mm
    spacing = grid.spacing_mm[0]
    out = np.empty((len(grid.grid_positions_mm), *sources.shape[1:]), dtype=np.int16)
    nearest = np.empty(len(out), dtype=np.int64)
    exact = np.zeros(len(out), dtype=bool)
    for k, q in enumerate(grid.grid_positions_mm):
        upper = int(np.clip(np.searchsorted(positions, q), 1, len(positions) - 1))
        lower = upper - 1
        gap = positions[upper] - positions[lower]
        weight = float(np.clip((q - positions[lower]) / gap, 0.0, 1.0))
        nearest[k] = lower if weight < 0.5 else upper
        if abs(q - positions[nearest[k]]) < _SAME_PLANE * spacing:
            out[k] = sources[nearest[k]]
            exact[k] = True
        else:
            blend = (1 - weight) * sources[lower].astype(np.float32) + weight * sources[upper]
            out[k] = np.rint(blend).astype(np.int16)
    return out, nearest, exact


def load_volume(
    grid: SliceGrid,
    study_uid: str,
    series_uid: str,
    warnings: tuple[IngestionWarning, ...] | None = None,
) -> Volume:
    """Decode the slices of a planned grid into a :class:`Volume`.

    ``warnings`` replaces the grid's own (a selection's warnings include them).

    Raises:
        PixelDataError: a slice cannot be decoded.
    """
    sources = _decode_all(grid)
    if grid.is_identity:
        hu = sources
        nearest = np.arange(len(sources))
        exact = np.ones(len(sources), dtype=bool)
    else:
        hu, nearest, exact = _resample_z(sources, grid)
    return Volume(
        hu=hu,
        spacing_mm=grid.spacing_mm,
        affine=grid.affine,
        study_uid=study_uid,
        series_uid=series_uid,
        frame_of_reference_uid=grid.instances[0].frame_of_reference_uid,
        source_sop_instance_uids=tuple(i.sop_instance_uid for i in grid.instances),
        source_frame_numbers=tuple(
            None if i.frame is None else i.frame + 1 for i in grid.instances
        ),
        plane_source=nearest,
        plane_is_source=exact,
        source_shifts_px=grid.shifts_px,
        transposed=grid.transpose,
        flipped_rows=grid.flip_rows,
        flipped_columns=grid.flip_columns,
        approximate=grid.approximate,
        warnings=grid.warnings if warnings is None else warnings,
    )

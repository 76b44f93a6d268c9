"""Slice geometry from headers alone: order, spacing, gaps, duplicates and gantry tilt.

Slices are ordered by their position along the plane normal (ImagePositionPatient projected on
the normal of ImageOrientationPatient), never by InstanceNumber. The result is a plan for an
orthogonal, uniformly spaced grid in the radiological in-plane orientation, inferior to
superior:

* gantry tilt: the slices of a tilted acquisition are stacked along the table, not along their
  normal; each slice is shifted in-plane so the stack becomes orthogonal (a shear correction).
  The z spacing is the perpendicular distance between planes, which is what volumes need;
* uneven spacing or missing slices: the grid keeps the most common spacing and the planes in
  between are interpolated (and reported); a gap wider than the policy allows is refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ich.dicom.errors import SeriesGeometryError
from ich.dicom.headers import InstanceHeader
from ich.dicom.policy import SelectionPolicy
from ich.schema import IngestionWarning

DUPLICATE_TOLERANCE_MM = 0.01
"""Slices closer than this along the normal are the same plane."""
SHEAR_TOLERANCE_PX = 0.05
"""In-plane offsets below this are numeric noise, not gantry tilt."""
_STANDARD_AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass(frozen=True)
class SliceGrid:
    """How the sorted source slices map onto the uniform, orthogonal output grid."""

    instances: tuple[InstanceHeader, ...]
    """Source slices, sorted inferior to superior (duplicates removed)."""
    source_positions_mm: np.ndarray
    """Position of each source slice along the normal, relative to the first."""
    grid_positions_mm: np.ndarray
    """Position of each output plane along the normal, relative to the first source slice."""
    spacing_mm: tuple[float, float, float]
    """(z, y, x) voxel size; z is perpendicular to the planes."""
    affine: np.ndarray
    """4x4 matrix from voxel index (k, i, j) to patient coordinates (LPS, mm)."""
    shifts_px: np.ndarray
    """Per source slice, the in-plane (row, column) offset that undoes gantry-tilt shear."""
    transpose: bool
    """Source images are rotated in-plane: rows and columns are swapped before any flip."""
    flip_rows: bool
    flip_columns: bool
    tilt_deg: float
    """Angle between the stacking direction and the plane normal (0 without gantry tilt)."""
    table_increment_mm: float | None
    """Distance between neighbouring slice origins (differs from z spacing under tilt)."""
    approximate: bool
    """True when a missing tag was replaced by a default: volumes are then approximate."""
    warnings: tuple[IngestionWarning, ...]

    @property
    def is_identity(self) -> bool:
        """Each output plane is exactly one source slice (no interpolation along z)."""
        return len(self.grid_positions_mm) == len(self.source_positions_mm) and bool(
            np.allclose(self.grid_positions_mm, self.source_positions_mm)
        )


def spacing_tolerance(spacing: float) -> float:
    """Differences between slice distances below this are position jitter, not unevenness."""
    return max(0.05, 0.05 * spacing)


def _common_clusters(diffs: np.ndarray) -> list[np.ndarray]:
    """Groups of similar slice distances, each shared by a fifth of the distances or more."""
    values = np.sort(diffs[diffs > DUPLICATE_TOLERANCE_MM])
    clusters: list[list[float]] = []
    for value in values:
        if clusters and value - clusters[-1][0] <= spacing_tolerance(clusters[-1][0]):
            clusters[-1].append(float(value))
        else:
            clusters.append([float(value)])
    support = max(2, 0.2 * len(diffs)) if len(diffs) > 2 else 1
    return [np.array(c) for c in clusters if len(c) >= support]


def nominal_spacing(diffs: np.ndarray) -> float:
    """The series' regular spacing: the smallest distance shared by a fifth of the slices or more.

    A median would be pulled up by the 7 mm half of a 4/7 mm two-part acquisition, or by gaps;
    the smallest common spacing keeps every acquired slice on the grid.
    """
    common = _common_clusters(diffs)
    return float(common[0].mean()) if common else float(np.median(diffs))


def _keep_latest(group: list[int], instances: Sequence[InstanceHeader]) -> int:
    return max(
        group,
        key=lambda i: (instances[i].acquisition_number or 0, instances[i].instance_number or 0),
    )


def _dedupe(
    order: np.ndarray, d: np.ndarray, instances: Sequence[InstanceHeader]
) -> tuple[np.ndarray, list[str]]:
    """Drop slices that repeat a position, keeping the later acquisition."""
    kept: list[int] = []
    dropped: list[str] = []
    group = [int(order[0])]
    for index in order[1:]:
        if d[index] - d[group[-1]] <= DUPLICATE_TOLERANCE_MM:
            group.append(int(index))
            continue
        keep = _keep_latest(group, instances)
        kept.append(keep)
        dropped += [instances[i].name for i in group if i != keep]
        group = [int(index)]
    keep = _keep_latest(group, instances)
    kept.append(keep)
    dropped += [instances[i].name for i in group if i != keep]
    return np.array(kept), dropped


def _warn(warnings: list[IngestionWarning], code: str, message: str) -> None:
    warnings.append(IngestionWarning(code=code, message=message))


def _describe_irregular(
    diffs: np.ndarray, spacing: float, warnings: list[IngestionWarning]
) -> None:
    """Warn about missing slices (rare gaps of whole spacings) and uneven spacing (the rest)."""
    tolerance = spacing_tolerance(spacing)
    common = _common_clusters(diffs)
    regular = np.zeros(len(diffs), dtype=bool)
    for cluster in common:
        regular |= (diffs >= cluster.min()) & (diffs <= cluster.max())
    multiples = np.round(diffs / spacing)
    missing_gap = (
        (multiples >= 2) & (np.abs(diffs - multiples * spacing) <= tolerance * multiples) & ~regular
    )
    uneven = (np.abs(diffs - spacing) > tolerance) & ~missing_gap
    if missing_gap.any():
        count = int((multiples[missing_gap] - 1).sum())
        _warn(
            warnings,
            "missing_slices",
            f"{count} slice(s) missing in {int(missing_gap.sum())} gap(s) (largest "
            f"{diffs[missing_gap].max():.2f} mm); the missing planes are interpolated from their "
            f"neighbours on the {spacing:.3f} mm grid.",
        )
    if uneven.any():
        _warn(
            warnings,
            "uneven_spacing",
            f"Slice spacing varies from {diffs.min():.3f} to {diffs.max():.3f} mm; resampled to a "
            f"uniform {spacing:.3f} mm grid by interpolating between neighbouring slices.",
        )


_APPROXIMATE = {
    "orientation_missing",
    "pixel_spacing_missing",
    "positions_missing",
    "slice_spacing_missing",
}
"""Warnings that mean a default replaced a missing tag, so volumes are approximate."""


@dataclass(frozen=True)
class _Axes:
    """In-plane axes after making the orientation radiological, and how the pixels must move."""

    row: np.ndarray
    col: np.ndarray
    dy: float
    dx: float
    transpose: bool
    flip_rows: bool
    flip_columns: bool
    corner: np.ndarray
    """Offset from the stored first pixel to the first pixel after flipping."""

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row, self.col)


def _axes(
    first: InstanceHeader, policy: SelectionPolicy, warnings: list[IngestionWarning]
) -> _Axes:
    orientation = first.orientation
    if orientation is None:
        orientation = _STANDARD_AXIAL
        _warn(
            warnings,
            "orientation_missing",
            "ImageOrientationPatient is missing; assumed a standard axial orientation.",
        )
    row = np.asarray(orientation[:3], float)
    col = np.asarray(orientation[3:], float)
    row /= np.linalg.norm(row)
    col -= (col @ row) * row  # exact orthogonality despite rounding in the header
    col /= np.linalg.norm(col)

    if first.pixel_spacing is None:
        dy = dx = policy.fallback_pixel_spacing_mm
        _warn(
            warnings,
            "pixel_spacing_missing",
            f"PixelSpacing is missing; assumed {dy} mm. Volumes are approximate.",
        )
    else:
        dy, dx = first.pixel_spacing

    # Radiological orientation: columns run to the patient's left, rows to posterior. An image
    # rotated by 90 degrees in-plane is transposed first, then mirrored axes are flipped.
    rows, columns = first.rows, first.columns
    transpose = bool(abs(row[1]) > abs(row[0]))
    if transpose:
        row, col, dy, dx, rows, columns = col, row, dx, dy, columns, rows
    flip_columns, flip_rows = bool(row[0] < 0), bool(col[1] < 0)
    corner = np.zeros(3)
    if flip_columns:
        corner += (columns - 1) * dx * row
        row = -row
    if flip_rows:
        corner += (rows - 1) * dy * col
        col = -col
    return _Axes(row, col, float(dy), float(dx), transpose, flip_rows, flip_columns, corner)


def _origins(
    instances: Sequence[InstanceHeader],
    axes: _Axes,
    policy: SelectionPolicy,
    warnings: list[IngestionWarning],
) -> np.ndarray:
    """Each slice's first-pixel position (LPS), synthesized along the normal when missing."""
    if all(inst.position is not None for inst in instances):
        return np.array([inst.position for inst in instances], float) + axes.corner
    first = instances[0]
    dz = first.spacing_between_slices or first.slice_thickness or policy.fallback_slice_spacing_mm
    if all(inst.instance_number is not None for inst in instances):
        keys = [(inst.instance_number, inst.frame or 0) for inst in instances]
        rank = np.empty(len(keys))
        rank[sorted(range(len(keys)), key=keys.__getitem__)] = np.arange(len(keys))
        d, how = rank * dz, "InstanceNumber and frame"
    else:
        d, how = np.arange(len(instances), dtype=float) * dz, "input order"
    _warn(
        warnings,
        "positions_missing",
        f"ImagePositionPatient is missing; slices ordered by {how} at {dz} mm spacing. "
        "Volumes are approximate.",
    )
    return d[:, None] * axes.normal


def _z_grid(
    positions: np.ndarray,
    instances: Sequence[InstanceHeader],
    policy: SelectionPolicy,
    warnings: list[IngestionWarning],
) -> tuple[np.ndarray, float]:
    """Output plane positions and their spacing; refuses gaps wider than the policy allows."""
    if len(positions) == 1:
        first = instances[0]
        spacing = first.spacing_between_slices or first.slice_thickness
        if not spacing:
            spacing = policy.fallback_slice_spacing_mm
            _warn(
                warnings,
                "slice_spacing_missing",
                f"A single slice without SliceThickness; assumed {spacing} mm. Volumes are "
                "approximate.",
            )
        return positions.copy(), float(spacing)
    diffs = np.diff(positions)
    if diffs.max() > policy.max_gap_mm:
        where = int(np.argmax(diffs))
        raise SeriesGeometryError(
            f"A gap of {diffs[where]:.1f} mm between slices {instances[where].name} and "
            f"{instances[where + 1].name} exceeds {policy.max_gap_mm} mm: slices are missing and "
            "volumes would be wrong. Send the complete series."
        )
    spacing = nominal_spacing(diffs)
    if np.all(np.abs(diffs - spacing) <= spacing_tolerance(spacing)):
        return positions.copy(), float(positions[-1] / (len(positions) - 1))
    _describe_irregular(diffs, spacing, warnings)
    return np.arange(round(positions[-1] / spacing) + 1) * spacing, spacing


def _shear(
    origins: np.ndarray,
    axes: _Axes,
    spacing: float,
    gantry_tag: float | None,
    warnings: list[IngestionWarning],
) -> tuple[np.ndarray, float, float | None]:
    """Per-slice in-plane shifts that undo gantry tilt, the tilt angle and the table increment."""
    normal = axes.normal
    offsets = origins - origins[0]
    in_plane = offsets - np.outer(offsets @ normal, normal)
    shifts = np.stack([in_plane @ axes.col / axes.dy, in_plane @ axes.row / axes.dx], axis=1)
    length = float(np.linalg.norm(offsets[-1]))
    tilt = math.degrees(math.acos(min(1.0, abs(offsets[-1] @ normal) / length))) if length else 0.0
    steps = np.linalg.norm(np.diff(origins, axis=0), axis=1)
    increment = float(np.median(steps)) if len(steps) else None
    if np.abs(shifts).max() <= SHEAR_TOLERANCE_PX:
        return np.zeros_like(shifts), tilt, increment
    tag = f" (GantryDetectorTilt {gantry_tag:g})" if gantry_tag else ""
    _warn(
        warnings,
        "gantry_tilt_corrected",
        f"Gantry tilt of {tilt:.1f} degrees{tag}: slices shear-corrected onto an orthogonal grid "
        f"(largest in-plane shift {np.abs(shifts).max():.1f} px); slice spacing {spacing:.3f} mm "
        f"is measured perpendicular to the slices, the table moved {increment:.3f} mm per slice "
        "(median).",
    )
    return shifts, tilt, increment


def plan_grid(instances: Sequence[InstanceHeader], policy: SelectionPolicy) -> SliceGrid:
    """Order, check and place the slices of one stack on a uniform orthogonal grid.

    Raises:
        SeriesGeometryError: a gap between neighbouring slices exceeds ``policy.max_gap_mm``.
    """
    warnings: list[IngestionWarning] = []
    first = instances[0]
    axes = _axes(first, policy, warnings)
    origins = _origins(instances, axes, policy, warnings)
    d = origins @ axes.normal
    order, dropped = _dedupe(np.argsort(d, kind="stable"), d, instances)
    if dropped:
        _warn(
            warnings,
            "duplicate_positions",
            f"{len(dropped)} image(s) repeat the position of another image and were not used "
            f"(kept the later acquisition): {', '.join(dropped[:5])}"
            + (" ..." if len(dropped) > 5 else ""),
        )
    sorted_instances = tuple(instances[i] for i in order)
    origins = origins[order]
    positions = d[order] - d[order[0]]
    grid, spacing = _z_grid(positions, sorted_instances, policy, warnings)
    shifts, tilt, increment = _shear(origins, axes, spacing, first.gantry_tilt, warnings)

    affine = np.eye(4)
    affine[:3, 0] = axes.normal * spacing
    affine[:3, 1] = axes.col * axes.dy
    affine[:3, 2] = axes.row * axes.dx
    affine[:3, 3] = origins[0]
    return SliceGrid(
        instances=sorted_instances,
        source_positions_mm=positions,
        grid_positions_mm=grid,
        spacing_mm=(spacing, axes.dy, axes.dx),
        affine=affine,
        shifts_px=shifts,
        transpose=axes.transpose,
        flip_rows=axes.flip_rows,
        flip_columns=axes.flip_columns,
        tilt_deg=tilt,
        table_increment_mm=increment,
        approximate=any(w.code in _APPROXIMATE for w in warnings),
        warnings=tuple(warnings),
    )

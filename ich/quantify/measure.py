"""Measurements of one hemorrhage instance: volume, extent, boxes, centroid, ABC/2.

Volumes count voxels times the voxel size of the analysed grid, whose slice spacing comes from
the slice positions (perpendicular to the planes, gantry tilt corrected), never from the
SliceThickness tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from ich.quantify.instances import Instance
from ich.quantify.rle import encode_rle
from ich.quantify.strata import stratum_of
from ich.schema import Hemorrhage, HemorrhageClass, SliceDetection, SliceMask


class _VolumeLike(Protocol):
    shape: tuple[int, int, int]
    plane_is_source: np.ndarray
    source_frame_numbers: tuple[int | None, ...]
    spacing_mm: tuple[float, float, float]
    affine: np.ndarray
    source_sop_instance_uids: tuple[str, ...]
    plane_source: np.ndarray


@dataclass(frozen=True)
class MeasurementGrid:
    """What measuring needs of the analysed grid."""

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    """(z, y, x) voxel size."""
    affine: np.ndarray
    """4x4 from voxel index (k, i, j) to patient LPS mm."""
    plane_sop_instance_uids: tuple[str | None, ...] = ()
    """The source image of each plane (None where the plane was interpolated)."""
    plane_frame_numbers: tuple[int | None, ...] = ()

    @classmethod
    def of(cls, volume: _VolumeLike) -> MeasurementGrid:
        """The geometry of an ingested :class:`ich.dicom.Volume` (or anything shaped so)."""
        sources = [int(s) if exact else None for s, exact in
                   zip(volume.plane_source, volume.plane_is_source, strict=True)]  # fmt: skip
        return cls(
            tuple(volume.shape),  # type: ignore[arg-type]
            tuple(volume.spacing_mm),  # type: ignore[arg-type]
            np.asarray(volume.affine),
            tuple(None if s is None else volume.source_sop_instance_uids[s] for s in sources),
            tuple(None if s is None else volume.source_frame_numbers[s] for s in sources),
        )

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing_mm)) / 1000.0

    def to_patient(self, kij: np.ndarray) -> np.ndarray:
        return np.asarray(kij, dtype=float) @ self.affine[:3, :3].T + self.affine[:3, 3]


def _diameters(mask: np.ndarray, pixel_mm: tuple[float, float]) -> tuple[float, float]:
    """(A, B) of a 2D mask in mm: the longest edge-to-edge diameter, and the width
    perpendicular to it (pixel corners, so a one-pixel mask is one pixel wide)."""
    rows, cols = np.nonzero(mask)
    corners = np.concatenate(
        [np.stack([rows + dr, cols + dc], axis=1) for dr in (-0.5, 0.5) for dc in (-0.5, 0.5)]
    ) * np.asarray(pixel_mm)
    try:
        points = corners[ConvexHull(corners).vertices]
    except QhullError:  # collinear pixels: the hull is degenerate but the corners still work
        points = corners
    gaps = points[:, None, :] - points[None, :, :]
    lengths = np.linalg.norm(gaps, axis=-1)
    first, second = np.unravel_index(int(np.argmax(lengths)), lengths.shape)
    a = float(lengths[first, second])
    direction = gaps[first, second] / max(a, 1e-9)
    across = points @ np.array([-direction[1], direction[0]])
    return a, float(across.max() - across.min())


def abc2_ml(
    mask: np.ndarray,
    spacing_mm: tuple[float, float, float],
    craniocaudal: Literal["kothari", "extent"] = "kothari",
) -> float:
    """The bedside ABC/2 volume of a 3D mask (z, y, x), in mL.

    A and B are the largest perpendicular diameters on the plane with the largest area. C is,
    as in Kothari et al. (Stroke 1996), the slice thickness times the number of slices, each
    counted as 1 when its area is at least 75% of the largest, 0.5 at 25-75% and 0 below; or,
    with ``craniocaudal="extent"``, the full craniocaudal extent. Kothari's weighting was made
    for irregular hematomas: on a true ellipsoid it gives C = 0.68 of the height, so ABC/2
    reads about a third low there while the full extent reads within 5%.
    """
    areas = mask.sum(axis=(1, 2)).astype(float)
    if not areas.any():
        return 0.0
    largest = int(np.argmax(areas))
    a, b = _diameters(mask[largest], spacing_mm[1:])
    if craniocaudal == "extent":
        slices = float((areas > 0).sum())
    else:
        ratio = areas / areas[largest]
        slices = float((ratio >= 0.75).sum() + 0.5 * ((ratio >= 0.25) & (ratio < 0.75)).sum())
    return a * b * slices * spacing_mm[0] / 2.0 / 1000.0


def _lps_box(
    geometry: MeasurementGrid, low: np.ndarray, high: np.ndarray
) -> tuple[float, float, float, float, float, float]:
    """(x0, y0, z0, x1, y1, z1) patient box of the voxel edges of voxels [low, high)."""
    corners = np.array([[k, i, j] for k in (low[0], high[0]) for i in (low[1], high[1])
                        for j in (low[2], high[2])]) - 0.5  # fmt: skip
    patient = geometry.to_patient(corners)
    return (
        *(round(float(v), 2) for v in patient.min(axis=0)),
        *(round(float(v), 2) for v in patient.max(axis=0)),
    )  # type: ignore[return-value]


def slice_detections(
    instance: Instance, geometry: MeasurementGrid, number: int
) -> list[SliceDetection]:
    """One record per plane of an instance: its box there and the best score on that plane."""
    region, found = instance.region, []
    uids, frames = geometry.plane_sop_instance_uids, geometry.plane_frame_numbers
    for plane, voxels in enumerate(instance.mask):
        rows, cols = np.nonzero(voxels)
        if not len(rows):
            continue
        k = int(region[0].start + plane)
        low = np.array([k, region[1].start + rows.min(), region[2].start + cols.min()])
        high = np.array([k + 1, region[1].start + rows.max() + 1, region[2].start + cols.max() + 1])
        score = instance.plane_scores[plane] if instance.plane_scores else instance.score
        found.append(
            SliceDetection(
                index=k,
                sop_instance_uid=uids[k] if uids else None,
                frame_number=frames[k] if frames else None,
                hemorrhage_class=instance.hemorrhage_class,
                score=round(score, 4),
                hemorrhage_id=number,
                box_pixels=(int(low[2]), int(low[1]), int(high[2]), int(high[1])),
                box_lps_mm=_lps_box(geometry, low, high),
            )
        )
    return found


def measure(
    instance: Instance, geometry: MeasurementGrid, number: int, masks: bool = True
) -> Hemorrhage:
    """The :class:`~ich.schema.Hemorrhage` record of an instance (``number`` is its id)."""
    region, mask = instance.region, instance.mask
    if not mask.any():
        raise ValueError(f"instance {number} has no voxels")
    start = np.array([s.start for s in region])
    voxels = np.argwhere(mask) + start
    low, high = voxels.min(axis=0), voxels.max(axis=0) + 1
    volume = round(instance.voxels * geometry.voxel_ml, 4)  # the stratum of what is shown
    planes = np.flatnonzero(mask.any(axis=(1, 2)))
    slice_masks = []
    if masks:
        full = np.zeros(geometry.shape[1:], dtype=bool)
        for plane in planes:
            k = int(start[0] + plane)
            full[:] = False
            full[region[1], region[2]] = mask[plane]
            uids, frames = geometry.plane_sop_instance_uids, geometry.plane_frame_numbers
            slice_masks.append(
                SliceMask(
                    index=k,
                    sop_instance_uid=uids[k] if uids else None,
                    frame_number=frames[k] if frames else None,
                    rle=encode_rle(full),
                )
            )
    return Hemorrhage(
        id=number,
        hemorrhage_class=instance.hemorrhage_class,
        score=round(instance.score, 4),
        volume_ml=volume,
        stratum=stratum_of(volume),
        slices=len(planes),
        extent_mm=tuple(
            round(float(n * s), 2) for n, s in zip(high - low, geometry.spacing_mm, strict=True)
        ),
        bbox_voxels=(*(int(v) for v in low), *(int(v) for v in high)),
        bbox_lps_mm=_lps_box(geometry, low, high),
        centroid_lps_mm=tuple(round(float(v), 2) for v in geometry.to_patient(voxels.mean(0))),
        abc2_ml=(
            round(abc2_ml(mask, geometry.spacing_mm), 4)
            if instance.hemorrhage_class is HemorrhageClass.IPH
            else None
        ),
        masks=slice_masks,
    )

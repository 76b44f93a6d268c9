"""NIfTI-1 single-file images (``.nii``, ``.nii.gz``) through nibabel.

Volumes go out to research tools (3D Slicer, ITK-SNAP, FSL) and public datasets come in as
NIfTI. This module fixes the project's conventions on top of nibabel: which header fields give
the geometry, which types are written, and one error type for files that cannot be read.

NIfTI orders voxels (i, j, k) with i fastest and maps them to RAS millimetres. The project's
volumes are (k, i, j) = (slice, row, column) arrays with an affine to LPS millimetres;
:func:`write_volume_nifti` and :func:`read_volume_nifti` convert between the two.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
from nibabel.spatialimages import HeaderDataError
from nibabel.wrapstruct import WrapStructError

_WRITE_TYPES = frozenset(np.dtype(name) for name in ("u1", "i2", "u2", "i4", "f4"))
"""The types written: what CT volumes and label maps need."""

_UNREADABLE = (OSError, EOFError, ValueError, zlib.error, HeaderDataError, WrapStructError)
"""What gzip and nibabel raise for a damaged, truncated or foreign file."""

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""LPS and RAS differ by the sign of the first two axes; the matrix is its own inverse."""

KIJ_TO_JIK = np.array(
    [[0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
"""Swaps the first and third index: (j, i, k) -> (k, i, j) and back; its own inverse."""


@dataclass(frozen=True)
class NiftiImage:
    """A NIfTI-1 image as stored: voxel order, values and geometry as the file gives them."""

    data: np.ndarray
    """Voxels indexed (i, j, k, ...) in the file's order; float32 when scl_slope rescales."""
    affine: np.ndarray
    """4x4 float64 from voxel index (i, j, k) to RAS mm."""
    affine_source: Literal["sform", "qform", "pixdim"]
    """Which header fields gave ``affine`` (sform wins, then qform, then pixdim alone)."""
    spacing: tuple[float, float, float]
    """|pixdim[1:4]| (0 read as 1): voxel size along i, j, k, taken as mm (xyzt_units unused)."""


def _load(raw: bytes) -> tuple[nib.Nifti1Image, np.ndarray]:
    """The image and its stored (unscaled) voxels; reading them is what finds truncated data."""
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    image = nib.Nifti1Image.from_bytes(raw)
    return image, np.asarray(image.dataobj.get_unscaled())


def _affine(header: nib.Nifti1Header) -> tuple[np.ndarray, Literal["sform", "qform", "pixdim"]]:
    """Explicit precedence rather than nibabel's best affine, whose last resort is centred."""
    sform, sform_code = header.get_sform(coded=True)
    if sform_code > 0:
        return sform, "sform"
    qform, qform_code = header.get_qform(coded=True)
    if qform_code > 0:
        return qform, "qform"
    return np.diag([*_spacing(header), 1.0]), "pixdim"


def _spacing(header: nib.Nifti1Header) -> tuple[float, float, float]:
    """pixdim[1:4] as positive sizes; 0 (unset) becomes 1, as nifti1_io does."""
    zooms = np.abs(header["pixdim"][1:4].astype(np.float64))
    si, sj, sk = (float(v) for v in np.where(zooms > 0, zooms, 1.0))
    return si, sj, sk


def read_nifti(path: str | Path) -> NiftiImage:
    """Read a single-file NIfTI-1 image, gzipped or not (detected from the content).

    Raises:
        ValueError: naming the file: not a single-file NIfTI-1 image, truncated or damaged, or
            voxels that are not integers or real numbers.
    """
    raw = Path(path).read_bytes()
    try:
        image, stored = _load(raw)
    except _UNREADABLE as error:
        raise ValueError(f"{path} is not a readable NIfTI-1 image: {error}") from error
    if stored.dtype.kind not in "iuf":
        raise ValueError(f"{path}: NIfTI voxels of type {stored.dtype} are not supported")
    data = stored.astype(stored.dtype.newbyteorder("="))
    slope, inter = float(image.dataobj.slope), float(image.dataobj.inter)
    if (slope, inter) != (1.0, 0.0):
        data = data.astype(np.float32) * np.float32(slope) + np.float32(inter)
    affine, source = _affine(image.header)
    spacing = _spacing(image.header)
    return NiftiImage(data=data, affine=affine, affine_source=source, spacing=spacing)


def write_nifti(path: str | Path, data: np.ndarray, affine_ras: np.ndarray) -> None:
    """Write ``data`` (indexed i, j, k, ...) as a single-file NIfTI-1, gzipped for ``.gz`` names.

    sform holds ``affine_ras`` (float32, NIfTI's precision). qform holds the same geometry when
    the affine is a rotation (proper or improper, through qfac) times per-axis scaling; with
    shear no quaternion can, so qform_code is 0 and readers use the sform.

    Raises:
        ValueError: a datatype other than uint8, int16, uint16, int32 and float32, 0 or more
            than 7 dimensions, or an affine that is not 4x4 with last row (0, 0, 0, 1).
    """
    data = np.asarray(data)
    dtype = data.dtype.newbyteorder("=")
    if dtype not in _WRITE_TYPES:
        raise ValueError(f"cannot write {data.dtype}: use uint8, int16, uint16, int32 or float32")
    if not 1 <= data.ndim <= 7:
        raise ValueError(f"NIfTI-1 holds 1 to 7 dimensions, not {data.ndim}")
    affine = np.asarray(affine_ras, dtype=np.float64)
    if affine.shape != (4, 4) or not np.allclose(affine[3], [0, 0, 0, 1]):
        raise ValueError("the affine must be 4x4 with last row (0, 0, 0, 1)")
    if np.any(np.linalg.norm(affine[:3, :3], axis=0) == 0):
        raise ValueError("the affine is singular: a voxel axis has zero length")

    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    image.set_sform(affine, code="scanner")
    try:
        image.set_qform(affine, code="scanner", strip_shears=False)
    except HeaderDataError:
        image.set_qform(None)
    payload = image.to_bytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    path.write_bytes(payload)


def write_volume_nifti(path: str | Path, array_kij: np.ndarray, affine_lps: np.ndarray) -> None:
    """Write a project volume ((k, i, j) array, affine to LPS mm) as NIfTI.

    The file's axes are (j, i, k): column, row, slice, as dcm2niix writes DICOM series, so
    NIfTI's fastest axis is the image row direction. The affine is re-indexed to match and
    flipped from LPS to RAS, so viewers place every voxel at its patient position.
    """
    data = np.asarray(array_kij).transpose(2, 1, 0)
    write_nifti(path, data, LPS_TO_RAS @ np.asarray(affine_lps, dtype=np.float64) @ KIJ_TO_JIK)


def read_volume_nifti(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A 3D NIfTI as a project volume: the (k, i, j) array and its affine to LPS mm.

    The exact inverse of :func:`write_volume_nifti` (the affine to NIfTI's float32 precision).
    The in-plane direction of rows and columns is the file's own: nothing is reoriented.

    Raises:
        ValueError: what :func:`read_nifti` raises, or an image that is not 3D.
    """
    image = read_nifti(path)
    data = image.data
    if data.ndim > 3 and int(np.prod(data.shape[3:])) == 1:
        data = data.reshape(data.shape[:3])
    if data.ndim != 3:
        raise ValueError(f"expected a 3D image, got shape {image.data.shape}")
    return data.transpose(2, 1, 0), LPS_TO_RAS @ image.affine @ KIJ_TO_JIK

"""NIfTI-1 single-file images (``.nii``, ``.nii.gz``) with numpy only.

Volumes go out to research tools (3D Slicer, ITK-SNAP, FSL) and public datasets come in as
NIfTI; nibabel would be a heavy dependency for one fixed-size header. Only what head CT needs is
covered: one single-file image, 1 to 7 dimensions, the common integer and float types, and the
three ways NIfTI places voxels in space (sform, quaternion qform, pixdim).

NIfTI orders voxels (i, j, k) with i fastest and maps them to RAS millimetres. The project's
volumes are (k, i, j) = (slice, row, column) arrays with an affine to LPS millimetres;
:func:`write_volume_nifti` and :func:`read_volume_nifti` convert between the two.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

_HEADER = np.dtype(
    [
        ("sizeof_hdr", "i4"),
        ("data_type", "S10"),
        ("db_name", "S18"),
        ("extents", "i4"),
        ("session_error", "i2"),
        ("regular", "S1"),
        ("dim_info", "u1"),
        ("dim", "i2", (8,)),
        ("intent_p", "f4", (3,)),
        ("intent_code", "i2"),
        ("datatype", "i2"),
        ("bitpix", "i2"),
        ("slice_start", "i2"),
        ("pixdim", "f4", (8,)),
        ("vox_offset", "f4"),
        ("scl_slope", "f4"),
        ("scl_inter", "f4"),
        ("slice_end", "i2"),
        ("slice_code", "u1"),
        ("xyzt_units", "u1"),
        ("cal_max", "f4"),
        ("cal_min", "f4"),
        ("slice_duration", "f4"),
        ("toffset", "f4"),
        ("glmax", "i4"),
        ("glmin", "i4"),
        ("descrip", "S80"),
        ("aux_file", "S24"),
        ("qform_code", "i2"),
        ("sform_code", "i2"),
        ("quatern", "f4", (3,)),
        ("qoffset", "f4", (3,)),
        ("srow", "f4", (3, 4)),
        ("intent_name", "S16"),
        ("magic", "S4"),
    ]
)
"""The 348-byte NIfTI-1 header, little-endian; ``newbyteorder`` gives the big-endian one."""

_VOX_OFFSET = 352
"""Header plus the 4-byte extension flag (no extensions): where written data starts."""

_READ_TYPES = {
    2: np.dtype("u1"),
    4: np.dtype("i2"),
    8: np.dtype("i4"),
    16: np.dtype("f4"),
    64: np.dtype("f8"),
    256: np.dtype("i1"),
    512: np.dtype("u2"),
    768: np.dtype("u4"),
    1024: np.dtype("i8"),
}
"""NIfTI datatype codes read, to little-endian numpy types."""

_WRITE_CODES = {
    np.dtype(name).newbyteorder("<"): code
    for code, name in ((2, "u1"), (4, "i2"), (512, "u2"), (8, "i4"), (16, "f4"))
}
"""The types written: what CT volumes and label maps need."""

_XFORM_SCANNER = 1
_UNITS_MM_SEC = 2 | 8
_RIGID_TOLERANCE = 1e-5
"""Largest off-diagonal of R^T R (R: the affine's unit columns) still taken as a rotation."""

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


def _decompress(raw: bytes) -> bytes:
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def _parse_header(raw: bytes) -> np.void:
    if len(raw) < _HEADER.itemsize:
        raise ValueError(f"{len(raw)} bytes: too short for a NIfTI-1 header")
    for order in "<>":
        header = np.frombuffer(raw, _HEADER.newbyteorder(order), count=1)[0]
        if header["sizeof_hdr"] == _HEADER.itemsize:
            break
    else:
        raise ValueError("not a NIfTI-1 file (sizeof_hdr is not 348; NIfTI-2 is not supported)")
    if header["magic"] != b"n+1":
        raise ValueError(
            f"magic {header['magic']!r}: only single-file NIfTI-1 (n+1) is supported, "
            "not .hdr/.img pairs"
        )
    if not 1 <= header["dim"][0] <= 7:
        raise ValueError(f"dim[0] = {header['dim'][0]} is outside 1..7")
    return header


def _zooms(pixdim: np.ndarray) -> np.ndarray:
    """pixdim[1:4] as positive sizes; 0 (unset) becomes 1, as nifti1_io does."""
    zooms = np.abs(pixdim[1:4].astype(np.float64))
    return np.where(zooms > 0, zooms, 1.0)


def quaternion_to_rotation(b: float, c: float, d: float) -> np.ndarray:
    """The rotation of NIfTI's unit quaternion (a, b, c, d), a = sqrt(1 - b^2 - c^2 - d^2).

    Stored float32 (b, c, d) of a 180 degree rotation can sum slightly above 1; they are then
    renormalised with a = 0, as the reference nifti1_io library does.
    """
    a2 = 1.0 - (b * b + c * c + d * d)
    if a2 < 1e-7:
        scale = 1.0 / np.sqrt(b * b + c * c + d * d)
        a, b, c, d = 0.0, b * scale, c * scale, d * scale
    else:
        a = np.sqrt(a2)
    return np.array(
        [
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ]
    )


def rotation_to_quaternion(rotation: np.ndarray) -> tuple[float, float, float]:
    """(b, c, d) of a proper rotation matrix, with a >= 0 (nifti1_io's branch-wise method)."""
    r = rotation
    trace = r[0, 0] + r[1, 1] + r[2, 2] + 1.0
    if trace > 0.5:
        a = 0.5 * np.sqrt(trace)
        b = (r[2, 1] - r[1, 2]) / (4 * a)
        c = (r[0, 2] - r[2, 0]) / (4 * a)
        d = (r[1, 0] - r[0, 1]) / (4 * a)
        return float(b), float(c), float(d)
    xd = 1.0 + r[0, 0] - (r[1, 1] + r[2, 2])
    yd = 1.0 + r[1, 1] - (r[0, 0] + r[2, 2])
    zd = 1.0 + r[2, 2] - (r[0, 0] + r[1, 1])
    if xd > 1.0:
        b = 0.5 * np.sqrt(xd)
        c = (r[0, 1] + r[1, 0]) / (4 * b)
        d = (r[0, 2] + r[2, 0]) / (4 * b)
        a = (r[2, 1] - r[1, 2]) / (4 * b)
    elif yd > 1.0:
        c = 0.5 * np.sqrt(yd)
        b = (r[0, 1] + r[1, 0]) / (4 * c)
        d = (r[1, 2] + r[2, 1]) / (4 * c)
        a = (r[0, 2] - r[2, 0]) / (4 * c)
    else:
        d = 0.5 * np.sqrt(zd)
        b = (r[0, 2] + r[2, 0]) / (4 * d)
        c = (r[1, 2] + r[2, 1]) / (4 * d)
        a = (r[1, 0] - r[0, 1]) / (4 * d)
    sign = -1.0 if a < 0 else 1.0
    return float(sign * b), float(sign * c), float(sign * d)


def _affine(header: np.void) -> tuple[np.ndarray, Literal["sform", "qform", "pixdim"]]:
    affine = np.eye(4)
    zooms = _zooms(header["pixdim"])
    if header["sform_code"] > 0:
        affine[:3] = header["srow"]
        return affine, "sform"
    if header["qform_code"] > 0:
        qfac = -1.0 if header["pixdim"][0] < 0 else 1.0
        b, c, d = (float(v) for v in header["quatern"])
        affine[:3, :3] = quaternion_to_rotation(b, c, d) * (zooms * [1.0, 1.0, qfac])
        affine[:3, 3] = header["qoffset"]
        return affine, "qform"
    affine[:3, :3] = np.diag(zooms)
    return affine, "pixdim"


def read_nifti(path: str | Path) -> NiftiImage:
    """Read a single-file NIfTI-1 image, gzipped or not (detected from the content).

    Raises:
        ValueError: not a single-file NIfTI-1 image, an unsupported datatype, or truncated data.
    """
    raw = _decompress(Path(path).read_bytes())
    header = _parse_header(raw)
    code = int(header["datatype"])
    if code not in _READ_TYPES:
        raise ValueError(f"NIfTI datatype {code} is not supported")
    dtype = _READ_TYPES[code].newbyteorder(header.dtype["sizeof_hdr"].byteorder)
    shape = tuple(int(n) for n in header["dim"][1 : header["dim"][0] + 1])
    offset = int(header["vox_offset"])
    count = int(np.prod(shape))
    if len(raw) < offset + count * dtype.itemsize:
        raise ValueError(f"data truncated: {shape} {dtype} needs more than {len(raw)} bytes")
    stored = np.frombuffer(raw, dtype, count=count, offset=offset).reshape(shape, order="F")
    data = stored.astype(dtype.newbyteorder("="))
    slope, inter = float(header["scl_slope"]), float(header["scl_inter"])
    if np.isfinite(slope) and slope != 0 and (slope, inter) != (1.0, 0.0):
        inter = inter if np.isfinite(inter) else 0.0
        data = data.astype(np.float32) * np.float32(slope) + np.float32(inter)
    affine, source = _affine(header)
    si, sj, sk = (float(v) for v in _zooms(header["pixdim"]))
    return NiftiImage(data=data, affine=affine, affine_source=source, spacing=(si, sj, sk))


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
    dtype = data.dtype.newbyteorder("<")
    if dtype not in _WRITE_CODES:
        raise ValueError(f"cannot write {data.dtype}: use uint8, int16, uint16, int32 or float32")
    if not 1 <= data.ndim <= 7:
        raise ValueError(f"NIfTI-1 holds 1 to 7 dimensions, not {data.ndim}")
    affine = np.asarray(affine_ras, dtype=np.float64)
    if affine.shape != (4, 4) or not np.allclose(affine[3], [0, 0, 0, 1]):
        raise ValueError("the affine must be 4x4 with last row (0, 0, 0, 1)")
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    if np.any(zooms == 0):
        raise ValueError("the affine is singular: a voxel axis has zero length")

    header = np.zeros((), _HEADER)
    header["sizeof_hdr"] = _HEADER.itemsize
    header["regular"] = b"r"
    header["dim"][: data.ndim + 1] = (data.ndim, *data.shape)
    header["dim"][data.ndim + 1 :] = 1
    header["datatype"] = _WRITE_CODES[dtype]
    header["bitpix"] = dtype.itemsize * 8
    header["pixdim"][:] = 1.0
    header["pixdim"][1:4] = zooms
    header["vox_offset"] = _VOX_OFFSET
    header["scl_slope"] = 1.0
    header["xyzt_units"] = _UNITS_MM_SEC
    header["descrip"] = b"ich.nifti"
    header["sform_code"] = _XFORM_SCANNER
    header["srow"] = affine[:3]
    rotation = affine[:3, :3] / zooms
    if np.abs(rotation.T @ rotation - np.eye(3)).max() < _RIGID_TOLERANCE:
        qfac = 1.0
        if np.linalg.det(rotation) < 0:
            qfac = -1.0
            rotation[:, 2] *= -1
        header["pixdim"][0] = qfac
        header["qform_code"] = _XFORM_SCANNER
        header["quatern"] = rotation_to_quaternion(rotation)
        header["qoffset"] = affine[:3, 3]
    header["magic"] = b"n+1"

    payload = b"".join(
        (header.tobytes(), bytes(_VOX_OFFSET - _HEADER.itemsize), data.astype(dtype).tobytes("F"))
    )
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

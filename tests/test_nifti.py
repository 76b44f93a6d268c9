"""NIfTI-1 reading and writing: round trips, the three geometry sources, exchange with
nibabel's own files, unreadable files, and a real file."""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ich.nifti import read_nifti, read_volume_nifti, write_nifti, write_volume_nifti

AFFINE_TOLERANCE = 1e-4
"""NIfTI-1 stores geometry as float32."""


def rotation(axis: int, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = (a for a in range(3) if a != axis)
    out = np.eye(3)
    out[i, i] = out[j, j] = c
    out[i, j], out[j, i] = -s, s
    return out


def affine(linear: np.ndarray, offset: tuple[float, float, float]) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = linear
    out[:3, 3] = offset
    return out


def header_field(path: Path, offset: int, dtype: str, count: int = 1) -> np.ndarray:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return np.frombuffer(raw, dtype, count=count, offset=offset)


def drop_sform(path: Path) -> None:
    """Zero sform_code in an uncompressed file: readers fall back to the qform."""
    raw = bytearray(path.read_bytes())
    raw[254:256] = np.int16(0).tobytes()
    path.write_bytes(bytes(raw))


ROTATED = affine(
    rotation(0, 17) @ rotation(1, -32) @ rotation(2, 141) @ np.diag([0.45, 0.5, 5.0]),
    (-120.5, 33.0, 250.0),
)
IMPROPER = affine(rotation(2, 12) @ np.diag([-0.46, 0.46, 5.0]), (117.8, 115.7, -943.5))
"""A left-handed frame, like most radiological NIfTI files: the qform needs qfac = -1."""
SHEARED = affine(np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 1.6], [0.0, 0.0, 4.7]]), (1.0, 2.0, 3.0))
"""Gantry tilt left uncorrected: slices offset along y as z rises."""


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "int32", "float32"])
def test_round_trip_every_type(tmp_path: Path, suffix: str, dtype: str) -> None:
    rng = np.random.default_rng(1)
    info = np.finfo(dtype) if dtype == "float32" else np.iinfo(dtype)
    data = rng.uniform(max(info.min, -5e4), min(info.max, 5e4), (7, 5, 3)).astype(dtype)
    path = tmp_path / f"image{suffix}"
    write_nifti(path, data, ROTATED)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == suffix.endswith(".gz")
    image = read_nifti(path)
    assert image.data.dtype == data.dtype
    assert np.array_equal(image.data, data)
    assert image.affine_source == "sform"
    assert np.allclose(image.affine, ROTATED, atol=AFFINE_TOLERANCE)
    assert image.spacing == pytest.approx((0.45, 0.5, 5.0))


@pytest.mark.parametrize("geometry", [ROTATED, IMPROPER, np.diag([0.4, 0.4, 2.5, 1.0])])
def test_qform_alone_gives_the_same_affine(tmp_path: Path, geometry: np.ndarray) -> None:
    path = tmp_path / "image.nii"
    write_nifti(path, np.zeros((4, 4, 4), np.int16), geometry)
    assert header_field(path, 252, "<i2", 2).tolist() == [1, 1]  # qform_code, sform_code
    drop_sform(path)
    image = read_nifti(path)
    assert image.affine_source == "qform"
    assert np.allclose(image.affine, geometry, atol=AFFINE_TOLERANCE)


def test_qfac_records_a_left_handed_frame(tmp_path: Path) -> None:
    path = tmp_path / "image.nii"
    write_nifti(path, np.zeros((2, 2, 2), np.uint8), IMPROPER)
    assert header_field(path, 76, "<f4")[0] == -1.0  # pixdim[0]


def test_sheared_affine_is_kept_in_the_sform_only(tmp_path: Path) -> None:
    path = tmp_path / "image.nii.gz"
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    write_nifti(path, data, SHEARED)
    assert header_field(path, 252, "<i2", 2).tolist() == [0, 1]
    image = read_nifti(path)
    assert np.array_equal(image.data, data)
    assert np.allclose(image.affine, SHEARED, atol=AFFINE_TOLERANCE)


@pytest.mark.parametrize("degrees", [0.0, 45.0, 179.0, 180.0])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_qform_keeps_every_rotation(tmp_path: Path, axis: int, degrees: float) -> None:
    """Half turns put the quaternion's real part at 0, where float32 rounding bites."""
    matrix = rotation(axis, degrees) @ rotation((axis + 1) % 3, degrees / 3)
    geometry = affine(matrix @ np.diag([0.45, 0.5, 5.0]), (10.0, -20.0, 30.0))
    path = tmp_path / "image.nii"
    write_nifti(path, np.zeros((2, 2, 2), np.uint8), geometry)
    drop_sform(path)
    image = read_nifti(path)
    assert image.affine_source == "qform"
    assert np.allclose(image.affine, geometry, atol=AFFINE_TOLERANCE)


def test_scaled_data_is_returned_as_float32(tmp_path: Path) -> None:
    path = tmp_path / "scaled.nii"
    stored = np.array([[[0, 1], [2, 3]]], np.int16)
    write_nifti(path, stored, np.eye(4))
    raw = bytearray(path.read_bytes())
    raw[112:120] = np.array([0.5, -1024.0], "<f4").tobytes()  # scl_slope, scl_inter
    path.write_bytes(bytes(raw))
    data = read_nifti(path).data
    assert data.dtype == np.float32
    assert np.array_equal(data, stored * 0.5 - 1024.0)


def test_unsupported_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="int64"):
        write_nifti(tmp_path / "x.nii", np.zeros((2, 2, 2), np.int64), np.eye(4))
    with pytest.raises(ValueError, match="4x4"):
        write_nifti(tmp_path / "x.nii", np.zeros((2, 2, 2), np.int16), np.eye(3))
    (tmp_path / "junk.nii").write_bytes(bytes(400))
    with pytest.raises(ValueError, match="NIfTI-1"):
        read_nifti(tmp_path / "junk.nii")


def test_nibabel_reads_what_we_write(tmp_path: Path) -> None:
    data = np.arange(7 * 5 * 3, dtype=np.int16).reshape(7, 5, 3)
    path = tmp_path / "image.nii.gz"
    write_nifti(path, data, IMPROPER)
    image = nib.load(path)
    assert image.shape == (7, 5, 3)
    assert image.get_data_dtype() == np.int16
    assert np.array_equal(np.asanyarray(image.dataobj), data)
    assert np.allclose(image.affine, IMPROPER, atol=AFFINE_TOLERANCE)
    assert int(image.header["sform_code"]) == int(image.header["qform_code"]) == 1  # scanner
    assert image.header.get_xyzt_units() == ("mm", "sec")


@pytest.mark.parametrize("endianness", ["<", ">"])
def test_we_read_what_nibabel_writes(tmp_path: Path, endianness: str) -> None:
    data = np.linspace(-1024, 3000, 4 * 6 * 5, dtype=np.float32).reshape(4, 6, 5)
    header = nib.Nifti1Header(endianness=endianness)
    written = tmp_path / "image.nii.gz"
    nib.save(nib.Nifti1Image(data, ROTATED, header), written)
    # Compression is told by the content, not the name.
    path = written.rename(tmp_path / "image.nii")
    image = read_nifti(path)
    assert image.data.dtype == np.dtype(np.float32)  # native byte order
    assert np.array_equal(image.data, data)
    assert image.affine_source == "sform"
    assert np.allclose(image.affine, ROTATED, atol=AFFINE_TOLERANCE)
    assert image.spacing == pytest.approx((0.45, 0.5, 5.0))


def _truncated(path: Path) -> None:
    write_nifti(path, np.zeros((8, 8, 8), np.int16), np.eye(4))
    path.write_bytes(path.read_bytes()[:400])


def _truncated_gzip(path: Path) -> None:
    write_nifti(path, np.zeros((8, 8, 8), np.int16), np.eye(4))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _header_only(path: Path) -> None:
    write_nifti(path, np.zeros((8, 8, 8), np.int16), np.eye(4))
    path.write_bytes(path.read_bytes()[:200])


def _text(path: Path) -> None:
    path.write_text("patient,slice,label\n" * 40)


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("truncated.nii", _truncated),
        ("truncated.nii.gz", _truncated_gzip),
        ("half-header.nii", _header_only),
        ("labels.nii", _text),
    ],
)
def test_unreadable_file_names_the_file(
    tmp_path: Path, name: str, damage: Callable[[Path], None]
) -> None:
    path = tmp_path / name
    damage(path)
    with pytest.raises(ValueError, match=re.escape(f"{path} is not a readable NIfTI-1 image")):
        read_nifti(path)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_volume_nifti(path)


def test_project_volume_round_trip_and_patient_positions(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    array_kij = rng.integers(-1024, 3000, (6, 9, 11)).astype(np.int16)
    # Radiological grid (columns to patient left, rows to posterior) under an 18 degree tilt.
    affine_lps = affine(
        rotation(0, 18) @ np.column_stack([[0, 0, 4.0], [0, 0.49, 0], [0.49, 0, 0]]),
        (-125.0, -110.0, -60.0),
    )
    path = tmp_path / "volume.nii.gz"
    write_volume_nifti(path, array_kij, affine_lps)

    back, back_affine = read_volume_nifti(path)
    assert np.array_equal(back, array_kij)
    assert np.allclose(back_affine, affine_lps, atol=AFFINE_TOLERANCE)

    # What a viewer sees: file voxel (j, i, k) holds project voxel (k, i, j), at the same
    # patient point, with x and y negated from LPS to RAS.
    image = read_nifti(path)
    assert image.data.shape == (11, 9, 6)
    k, i, j = 5, 2, 7
    assert image.data[j, i, k] == array_kij[k, i, j]
    lps = affine_lps @ [k, i, j, 1]
    assert np.allclose(image.affine @ [j, i, k, 1], lps * [-1, -1, 1, 1], atol=1e-3)


@pytest.mark.realdata
def test_reads_the_deepbleed_volume(real: Path) -> None:
    files = sorted((real / "deepbleed_volume").glob("*.nii*"))
    if not files:
        pytest.skip("no NIfTI in deepbleed_volume")
    image = read_nifti(files[0])
    assert image.data.shape == (512, 512, 33)
    assert image.spacing == pytest.approx((0.46, 0.46, 5.0), abs=0.01)
    assert image.affine_source == "sform"
    assert np.allclose(np.abs(np.diag(image.affine)[:3]), image.spacing)
    assert image.data.min() >= -70 and image.data.max() <= 320  # HU clipped to -66..320

    array_kij, affine_lps = read_volume_nifti(files[0])
    assert array_kij.shape == (33, 512, 512)
    assert np.linalg.norm(affine_lps[:3, 0]) == pytest.approx(5.0)

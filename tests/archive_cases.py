"""Zips for the archive-expansion tests: a valid study whose air-only top slice compresses
hundreds of times over (as blank, padded or windowed slices of real exports do), and a member
whose headers understate what it expands to (as only an attacker writes them)."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
from ellipsoid_head import AIR, EllipsoidHead

from ich.phantom.series_writer import SeriesSpec, StudyInfo, encode_series, render, to_bytes

AIR_SLICE = SeriesSpec(
    slices=8,
    matrix=512,
    pixel_spacing_mm=0.45,
    table_increment_mm=5.0,
    first_z_mm=-15.0,
    pad_outside_fov=False,
)
"""A 512-matrix series (a real scanner's) whose last slice lies above the head: air only."""


def study_with_an_air_slice() -> tuple[str, list[bytes]]:
    """(study UID, DICOM files): the phantom with a scanner's noise, its top slice pure air."""
    planes = render(EllipsoidHead(), AIR_SLICE)
    planes += np.random.default_rng(7).normal(0.0, 5.0, planes.shape).astype(np.float32)
    planes[-1] = AIR
    study = StudyInfo()
    return study.study_uid, [to_bytes(ds) for ds in encode_series(planes, AIR_SLICE, study)]


def zipped(files: list[bytes]) -> bytes:
    """The files as ``python3 -m zipfile -c study.zip study/`` writes them (deflate), at the
    strongest level, so the air slice compresses as far as any tool makes it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for n, data in enumerate(files):
            archive.writestr(f"study/{n:03d}.dcm", data)
    return buffer.getvalue()


def member_ratios(archive: bytes) -> list[float]:
    """Uncompressed over compressed size of each member, as its headers state them."""
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return [i.file_size / i.compress_size for i in opened.infolist()]


def understated(data: bytes, stated: int) -> bytes:
    """A zip of ``data`` (deflated) whose headers say it holds only its first ``stated``
    bytes, with their CRC: zipfile alone would hand over just those, without complaint."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.dcm", data)
    raw = bytearray(buffer.getvalue())
    crc = zlib.crc32(data[:stated])
    local, central = raw.index(b"PK\x03\x04"), raw.index(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 14, crc)  # local file header: CRC-32 ...
    struct.pack_into("<I", raw, local + 22, stated)  # ... and uncompressed size
    struct.pack_into("<I", raw, central + 16, crc)  # central directory: the same
    struct.pack_into("<I", raw, central + 24, stated)
    return bytes(raw)

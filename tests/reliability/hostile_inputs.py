"""Hypothesis strategies for hostile studies and request bodies: DICOM element mutations,
wrong VRs, truncations, huge lengths, deflated and compressed transfer syntaxes, zip bombs,
traversing archive members, and bodies that lie about their content type."""

from __future__ import annotations

import functools
import io
import struct
import zipfile
from typing import Any

import pydicom
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)
from reliability_support import as_zip, tiny_study  # type: ignore[import-not-found]

ELEMENTS = (
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PixelSpacing",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "SliceThickness",
    "RescaleSlope",
    "RescaleIntercept",
    "Modality",
    "SOPClassUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "NumberOfFrames",
    "ImageType",
    "ConvolutionKernel",
    "GantryDetectorTilt",
    "InstanceNumber",
)
"""Attributes ingestion reads: each gets odd values, wrong VRs or is removed."""

ODD_VALUES = st.one_of(
    st.none(),
    st.text(max_size=70),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=7),
    st.lists(st.integers(-(2**16), 2**16), max_size=7),
    st.sampled_from(["", "\\", "1\\2\\3\\4\\5\\6\\7", "NaN", "-0", "1e308", "ABC\x00"]),
)
TRAVERSING = ("../../etc/evil.dcm", "/tmp/evil.dcm", "a/../../evil.dcm", "C:\\x.dcm")
WRONG_VRS = ("US", "SS", "UL", "FD", "FL", "DS", "IS", "UI", "CS", "LO", "OB", "SQ", "AT")


@functools.cache
def _study() -> tuple[str, tuple[bytes, ...]]:
    uid, files = tiny_study()
    return uid, tuple(files)


def _base() -> tuple[str, list[bytes]]:
    """The same valid study every time (Hypothesis replays and shrinks from it)."""
    uid, files = _study()
    return uid, list(files)


def _datasets(files: list[bytes]) -> list[Dataset]:
    return [pydicom.dcmread(io.BytesIO(f), force=True) for f in files]


def _set_value(ds: Dataset, keyword: str, value: Any, vr: str | None) -> None:
    tag = pydicom.datadict.tag_for_keyword(keyword)
    if value is None:
        if keyword in ds:
            del ds[keyword]
        return
    if vr is not None:
        ds.add_new(tag, vr, value)
    else:
        setattr(ds, keyword, value)


@st.composite
def element_mutation(draw: st.DrawFn) -> tuple[str, list[bytes]]:
    """One or every file with an attribute changed, given a wrong VR, or removed."""
    _, files = _base()
    datasets = _datasets(files)
    keyword = draw(st.sampled_from(ELEMENTS))
    value = draw(ODD_VALUES)
    vr = draw(st.one_of(st.none(), st.sampled_from(WRONG_VRS)))
    which = draw(st.sampled_from(["one", "all"]))
    targets = datasets if which == "all" else [datasets[draw(st.integers(0, len(datasets) - 1))]]
    encoded = []
    for ds in datasets:
        if any(ds is t for t in targets):
            try:
                _set_value(ds, keyword, value, vr)
                encoded.append(_encode(ds))
                continue
            except Exception:  # pydicom will not write this value: the attribute goes instead
                _set_value(ds, keyword, None, None)
        encoded.append(_encode(ds))
    return f"element {keyword} {vr or ''}={value!r:.40}", encoded


def _encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@st.composite
def byte_mutation(draw: st.DrawFn) -> tuple[str, list[bytes]]:
    """A file truncated, bytes overwritten in its header, or a length made huge."""
    _, files = _base()
    index = draw(st.integers(0, len(files) - 1))
    data = bytearray(files[index])
    kind = draw(st.sampled_from(["truncate", "overwrite", "huge-length", "garbage-file"]))
    if kind == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "overwrite":
        for _ in range(draw(st.integers(1, 16))):
            at = draw(st.integers(128, min(len(data) - 1, 1500)))
            data[at] = draw(st.integers(0, 255))
    elif kind == "huge-length":
        # a private OB element claiming almost 4 GiB, right after the file meta group
        length = draw(st.sampled_from([0xFFFFFFF0, 0x7FFFFFFF, 0xFFFFFFFE, len(data) * 4]))
        element = struct.pack("<HH2sHI", 0x0009, 0x0010, b"OB", 0, length)
        meta_end = 132 + 12 + struct.unpack("<I", bytes(data[140:144]))[0]
        data[meta_end:meta_end] = element + b"\x00" * 16
    else:
        data = bytearray(draw(st.binary(min_size=0, max_size=4096)))
    files[index] = bytes(data)
    return f"bytes {kind} in file {index}", files


@st.composite
def syntax_mutation(draw: st.DrawFn) -> tuple[str, list[bytes]]:
    """Other transfer syntaxes, real (deflated, implicit, RLE) or lying about the encoding
    (JPEG 2000 claimed over raw pixels, big endian over little-endian bytes)."""
    _, files = _base()
    datasets = _datasets(files)
    syntax = draw(
        st.sampled_from(
            [
                DeflatedExplicitVRLittleEndian,
                ExplicitVRBigEndian,
                ImplicitVRLittleEndian,
                RLELossless,
                JPEG2000Lossless,
            ]
        )
    )
    encoded = []
    for ds in datasets:
        lies = syntax in (JPEG2000Lossless, ExplicitVRBigEndian)
        if syntax == RLELossless:
            ds.compress(RLELossless)
        elif not lies:
            ds.file_meta.TransferSyntaxUID = syntax
        data = _encode(ds)
        if lies:  # the header claims what the bytes are not (JPEG 2000, big endian)
            data = _relabel(data, syntax)
        encoded.append(data)
    return f"syntax {syntax.name}", encoded


def _relabel(data: bytes, syntax: str) -> bytes:
    """The file with its meta group's transfer syntax replaced, the dataset left as it was."""
    meta_length = struct.unpack("<I", data[140:144])[0]
    body = data[144 + meta_length :]
    meta = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta
    meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    buffer.write(data[:132])
    pydicom.filewriter.write_file_meta_info(buffer, meta, enforce_standard=True)
    return buffer.getvalue() + body


def hostile_study() -> st.SearchStrategy[tuple[str, list[bytes]]]:
    return st.one_of(element_mutation(), byte_mutation(), syntax_mutation())


def zip_bomb() -> bytes:
    """One member of 256 MiB of zeros (ratio about 1000:1)."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("bomb.dcm", "w", force_zip64=True) as member,
    ):
        block = b"\x00" * (1 << 20)
        for _ in range(256):
            member.write(block)
    return buffer.getvalue()


def _zip_named(names: list[str], data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


BODY_KINDS = (
    "no-type",
    "text",
    "json",
    "form-no-boundary",
    "form-garbage",
    "zip-not-zip",
    "zip-bomb",
    "zip-traversal",
    "zip-nested",
    "zip-many",
    "dicom-random",
    "dicom-empty",
    "related-to-analyses",
)


def body_of(kind: str, noise: bytes, member: str, bomb: bytes) -> tuple[str, bytes]:
    """(Content-Type, body) of one kind of hostile request to POST /v1/analyses: wrong or lying
    content types, archives that escape (``member``) or explode."""
    files = list(_study()[1])
    if kind == "zip-traversal":
        return "application/zip", _zip_named([member], files[0])
    if kind == "zip-nested":
        return "application/zip", _zip_named(["inner.zip"], as_zip(files))
    if kind == "zip-many":
        return "application/zip", _zip_named([f"{n}.dcm" for n in range(5001)], b"")
    bodies = {
        "no-type": ("", noise),
        "text": ("text/plain", noise),
        "json": ("application/json", b'{"files": []}'),
        "form-no-boundary": ("multipart/form-data", noise),
        "form-garbage": ("multipart/form-data; boundary=xyz", b"--xyz\r\n" + noise),
        "zip-not-zip": ("application/zip", files[0]),
        "zip-bomb": ("application/zip", bomb),
        "dicom-random": ("application/dicom", noise),
        "dicom-empty": ("application/dicom", b""),
        "related-to-analyses": ('multipart/related; type="application/dicom"; boundary=b', noise),
    }
    return bodies[kind]


@st.composite
def hostile_body(draw: st.DrawFn, bomb: bytes) -> tuple[str, str, bytes]:
    """(label, Content-Type, body): one of :data:`BODY_KINDS` with drawn noise."""
    kind = draw(st.sampled_from(BODY_KINDS))
    noise = draw(st.binary(max_size=2048))
    return (kind, *body_of(kind, noise, draw(st.sampled_from(TRAVERSING)), bomb))

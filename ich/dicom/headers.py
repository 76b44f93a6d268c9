"""Header-only parsing: the attributes that series grouping, selection and geometry need.

Pixel data is never read here, so a whole upload can be triaged cheaply (the gateway does this
without decoding a single image). Unparseable or non-image objects become :class:`Skipped`
notes instead of exceptions: scanners send structured reports, presentation states and
DICOMDIRs alongside the images, and none of that should stop an analysis.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from enum import StrEnum

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from ich.dicom.sources import DicomSource

_PREAMBLE_LEN = 128
_MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"


class SkipKind(StrEnum):
    """Why a file is not used, as a category that reports can count."""

    NOT_DICOM = "not DICOM"
    DIRECTORY = "DICOMDIR"
    NON_IMAGE = "non-image object"
    UNREADABLE = "unreadable"
    TRUNCATED = "truncated"
    REPEATED = "repeated instance"


@dataclass(frozen=True, slots=True)
class Skipped:
    """A candidate file that is not used, and why."""

    name: str
    kind: SkipKind
    reason: str

    @property
    def unreadable(self) -> bool:
        """The file claims to be DICOM but is corrupt or cut short."""
        return self.kind in (SkipKind.UNREADABLE, SkipKind.TRUNCATED)


@dataclass(frozen=True, slots=True)
class InstanceHeader:
    """The header attributes of one image instance (single-frame or multi-frame)."""

    source: DicomSource
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    series_number: int | None
    series_description: str
    modality: str
    image_type: tuple[str, ...]
    orientation: tuple[float, ...] | None
    position: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    spacing_between_slices: float | None
    rows: int
    columns: int
    samples_per_pixel: int
    number_of_frames: int
    kernel: str
    contrast_agent: str
    contrast_route: str
    gantry_tilt: float | None
    instance_number: int | None
    acquisition_number: int | None
    transfer_syntax_uid: str
    manufacturer: str
    frame: int | None = None
    """0-based frame of a multi-frame (Enhanced CT) instance; None for a single-frame image."""
    rescale: tuple[float, float] | None = None
    """(slope, intercept) from the frame's functional groups; None: the dataset's own tags."""

    @property
    def name(self) -> str:
        return self.source.name if self.frame is None else f"{self.source.name}[{self.frame + 1}]"


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def number(ds: Dataset, keyword: str, kind: type[int] | type[float]) -> int | float | None:
    """The attribute as one number (the first of several), or None when absent or not one."""
    value = ds.get(keyword)
    if isinstance(value, pydicom.multival.MultiValue):
        value = value[0] if len(value) else None
    if value is None or value == "":
        return None
    try:
        return kind(float(value)) if kind is int else float(value)
    except (TypeError, ValueError):
        return None


def _vector(ds: Dataset, keyword: str, length: int) -> tuple[float, ...] | None:
    value = ds.get(keyword)
    try:
        vector = tuple(float(v) for v in value) if value is not None else ()
    except (TypeError, ValueError):
        return None
    return vector if len(vector) == length else None


def _orientation(ds: Dataset) -> tuple[float, ...] | None:
    """ImageOrientationPatient when it holds two near-unit, near-orthogonal vectors."""
    iop = _vector(ds, "ImageOrientationPatient", 6)
    if iop is None:
        return None
    row, col = iop[:3], iop[3:]
    norms = [math.sqrt(sum(v * v for v in vec)) for vec in (row, col)]
    dot = sum(a * b for a, b in zip(row, col, strict=True))
    if not all(0.9 < n < 1.1 for n in norms) or abs(dot) > 0.1:
        return None
    return iop


def _contrast_agent(ds: Dataset) -> str:
    """ContrastBolusAgent, or the coded agent that Enhanced CT uses instead."""
    agent = _text(ds, "ContrastBolusAgent")
    coded = ds.get("ContrastBolusAgentSequence")
    if not agent and coded:
        agent = str(coded[0].get("CodeMeaning", "") or "coded contrast agent")
    return agent


def _pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        spacing = _vector(ds, keyword, 2)
        if spacing and all(s > 0 for s in spacing):
            return spacing[0], spacing[1]
    return None


def _expected_native_bytes(ds: Dataset) -> int:
    rows, cols = int(number(ds, "Rows", int) or 0), int(number(ds, "Columns", int) or 0)
    frames = int(number(ds, "NumberOfFrames", int) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    return rows * cols * frames * samples * bits // 8


def _parse(source: DicomSource) -> tuple[Dataset, int]:
    """The dataset without pixel data, and the number of bytes left for the pixel data."""
    with source.open() as fh:
        head = fh.read(_PREAMBLE_LEN + 4)
        fh.seek(0)
        has_preamble = head[_PREAMBLE_LEN:] == b"DICM"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(fh, stop_before_pixels=True, force=not has_preamble)
        return ds, source.size - fh.tell()


_FUNCTIONAL_GROUPS = {
    "PlanePositionSequence": ("ImagePositionPatient",),
    "PlaneOrientationSequence": ("ImageOrientationPatient",),
    "PixelMeasuresSequence": ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices"),
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept"),
    "CTReconstructionSequence": ("ConvolutionKernel",),
}
"""Functional group macros of Enhanced CT and the attributes each one carries."""


def _frame_attributes(ds: Dataset, index: int) -> Dataset:
    """The attributes of one frame: shared functional groups overlaid by its own."""
    flat = Dataset()
    groups = [*ds.get("SharedFunctionalGroupsSequence", [])[:1]]
    groups.append(ds.PerFrameFunctionalGroupsSequence[index])
    for group in groups:
        for macro, keywords in _FUNCTIONAL_GROUPS.items():
            items = group.get(macro)
            if items:
                for keyword in keywords:
                    if keyword in items[0]:
                        flat[keyword] = items[0][keyword]
    return flat


def _frames(header: InstanceHeader, ds: Dataset) -> list[InstanceHeader]:
    """One header per frame of an Enhanced (multi-frame) CT instance."""
    frames = []
    for index in range(header.number_of_frames):
        flat = _frame_attributes(ds, index)
        slope, intercept = (
            number(flat, "RescaleSlope", float),
            number(flat, "RescaleIntercept", float),
        )
        frames.append(
            replace(
                header,
                frame=index,
                orientation=_orientation(flat) or header.orientation,
                position=_vector(flat, "ImagePositionPatient", 3),
                pixel_spacing=_pixel_spacing(flat) or header.pixel_spacing,
                slice_thickness=number(flat, "SliceThickness", float) or header.slice_thickness,
                spacing_between_slices=number(flat, "SpacingBetweenSlices", float),
                kernel=_text(flat, "ConvolutionKernel") or header.kernel,
                rescale=(slope or 1.0, intercept or 0.0) if intercept is not None else None,
            )
        )
    return frames


def read_header(source: DicomSource) -> list[InstanceHeader] | Skipped:
    """The image headers of one candidate file (one per frame), or why it is not used."""
    try:
        ds, pixel_bytes = _parse(source)
        header = _header(source, ds, pixel_bytes)
        if isinstance(header, Skipped):
            return header
        if "PerFrameFunctionalGroupsSequence" in ds:
            return _frames(header, ds)
        return [header]
    except InvalidDicomError:
        return Skipped(source.name, SkipKind.NOT_DICOM, "not a DICOM file")
    except Exception as exc:  # pydicom raises many types on corrupt input
        return Skipped(
            source.name, SkipKind.UNREADABLE, f"unreadable DICOM ({type(exc).__name__}: {exc})"
        )


def _header(source: DicomSource, ds: Dataset, pixel_bytes: int) -> InstanceHeader | Skipped:
    """The instance-level header, or why the parsed object is not an image to use."""
    meta = getattr(ds, "file_meta", Dataset())
    sop_class = _text(ds, "SOPClassUID") or _text(meta, "MediaStorageSOPClassUID")
    if "DirectoryRecordSequence" in ds or sop_class == _MEDIA_DIRECTORY:
        return Skipped(source.name, SkipKind.DIRECTORY, "DICOMDIR (media directory), not an image")
    if not sop_class and "SOPInstanceUID" not in ds and "Rows" not in ds:
        return Skipped(source.name, SkipKind.NOT_DICOM, "not a DICOM file")
    rows, columns = number(ds, "Rows", int), number(ds, "Columns", int)
    if not rows or not columns:
        kind = UID(sop_class).name if sop_class else "object without pixel data"
        if "Image Storage" in kind:
            return Skipped(
                source.name,
                SkipKind.UNREADABLE,
                f"unreadable DICOM ({kind} without image attributes: truncated or corrupt header)",
            )
        return Skipped(source.name, SkipKind.NON_IMAGE, f"non-image object ({kind})")

    transfer_syntax = UID(_text(meta, "TransferSyntaxUID") or pydicom.uid.ImplicitVRLittleEndian)
    # Native pixel data must be all there, after its element header (8 bytes in implicit VR,
    # 12 for OB/OW in explicit VR). Deflated files are inflated into pydicom's own buffer, so
    # the file position says nothing about them.
    expected = _expected_native_bytes(ds)
    present = pixel_bytes - (8 if transfer_syntax.is_implicit_VR else 12)
    native = not (transfer_syntax.is_compressed or transfer_syntax.is_deflated)
    if native and present < expected:
        return Skipped(
            source.name,
            SkipKind.TRUNCATED,
            f"truncated: {max(present, 0)} of {expected} pixel bytes present",
        )

    return InstanceHeader(
        source=source,
        sop_class_uid=sop_class,
        sop_instance_uid=_text(ds, "SOPInstanceUID") or _text(meta, "MediaStorageSOPInstanceUID"),
        study_uid=_text(ds, "StudyInstanceUID"),
        series_uid=_text(ds, "SeriesInstanceUID"),
        frame_of_reference_uid=_text(ds, "FrameOfReferenceUID"),
        series_number=number(ds, "SeriesNumber", int),  # type: ignore[arg-type]
        series_description=_text(ds, "SeriesDescription"),
        modality=_text(ds, "Modality").upper(),
        image_type=tuple(v.strip().upper() for v in _text(ds, "ImageType").split("\\") if v),
        orientation=_orientation(ds),
        position=_vector(ds, "ImagePositionPatient", 3),
        pixel_spacing=_pixel_spacing(ds),
        slice_thickness=number(ds, "SliceThickness", float),
        spacing_between_slices=number(ds, "SpacingBetweenSlices", float),
        rows=int(rows),
        columns=int(columns),
        samples_per_pixel=int(ds.get("SamplesPerPixel", 1) or 1),
        number_of_frames=int(number(ds, "NumberOfFrames", int) or 1),
        kernel=_text(ds, "ConvolutionKernel"),
        contrast_agent=_contrast_agent(ds),
        contrast_route=_text(ds, "ContrastBolusRoute"),
        gantry_tilt=number(ds, "GantryDetectorTilt", float),
        instance_number=number(ds, "InstanceNumber", int),  # type: ignore[arg-type]
        acquisition_number=number(ds, "AcquisitionNumber", int),  # type: ignore[arg-type]
        transfer_syntax_uid=str(transfer_syntax),
        manufacturer=_text(ds, "Manufacturer"),
    )

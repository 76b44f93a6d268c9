"""Writes CT series as DICOM from an analytic phantom, with scanner-like geometry and tags.

Each slice is sampled on its own plane in patient space, so gantry tilt, slice spacing and
in-plane orientation are physically consistent, exactly as a scanner would encode them. The
writer covers what ingestion must handle: rescale intercept 0 or -1024, padding values,
compressed transfer syntaxes, localizers, derived and contrast series.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from io import BytesIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

Phantom = Callable[[np.ndarray], np.ndarray]
"""Maps patient coordinates (..., 3) in LPS mm to HU."""

PADDING_STORED = -2000
"""Stored value of pixels outside the reconstruction circle when padding is enabled."""


@dataclass(frozen=True)
class StudyInfo:
    """Identifiers shared by every series of one synthetic study (no real patient data)."""

    study_uid: str = field(default_factory=generate_uid)
    frame_of_reference_uid: str = field(default_factory=generate_uid)
    patient_id: str = "SYNTH-0001"
    patient_name: str = "Synthetic^Phantom"
    accession: str = "SYN0001"
    study_date: str = "20260101"


@dataclass(frozen=True)
class SeriesSpec:
    """Acquisition and reconstruction parameters of one axial (or other) series."""

    slices: int = 24
    matrix: int = 512
    pixel_spacing_mm: float = 0.45
    table_increment_mm: float = 5.0
    slice_thickness_mm: float | None = None
    tilt_deg: float = 0.0
    """Gantry tilt: the image planes rotate about the patient's left-right axis."""
    first_z_mm: float = -60.0
    orientation: tuple[float, ...] | None = None
    """Override of ImageOrientationPatient (e.g. a sagittal reformat); tilt is then ignored."""
    origin_mm: tuple[float, float, float] | None = None
    """ImagePositionPatient of the first slice; by default the images are centred on the
    table axis at ``first_z_mm``."""
    rescale_intercept: float = -1024.0
    rescale_slope: float = 1.0
    pad_outside_fov: bool = True
    kernel: str = "STANDARD"
    description: str = "HEAD 5mm STND"
    series_number: int = 2
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL")
    modality: str = "CT"
    contrast_agent: str | None = None
    manufacturer: str = "ICH Phantom"
    transfer_syntax: str = ExplicitVRLittleEndian
    series_uid: str = field(default_factory=generate_uid)

    def row_column(self) -> tuple[np.ndarray, np.ndarray]:
        if self.orientation is not None:
            o = np.asarray(self.orientation, float)
            return o[:3], o[3:]
        t = math.radians(self.tilt_deg)
        return np.array([1.0, 0.0, 0.0]), np.array([0.0, math.cos(t), -math.sin(t)])

    def origins(self) -> np.ndarray:
        """ImagePositionPatient of each slice: the table moves along z (or the plane normal)."""
        row, col = self.row_column()
        half = (self.matrix - 1) / 2 * self.pixel_spacing_mm
        centre = np.array([0.0, 0.0, self.first_z_mm])
        if self.orientation is not None:
            step = np.cross(row, col) * self.table_increment_mm
        else:
            step = np.array([0.0, 0.0, self.table_increment_mm])
        k = np.arange(self.slices)[:, None]
        first = centre - half * row - half * col if self.origin_mm is None else self.origin_mm
        return np.asarray(first, dtype=float) + k * step

    def affine(self) -> np.ndarray:
        """4x4 from (slice, row, column) indices to patient LPS mm (sheared when tilted)."""
        row, col = self.row_column()
        origins = self.origins()
        affine = np.eye(4)
        affine[:3, 0] = origins[1] - origins[0] if len(origins) > 1 else np.cross(row, col)
        affine[:3, 1] = col * self.pixel_spacing_mm
        affine[:3, 2] = row * self.pixel_spacing_mm
        affine[:3, 3] = origins[0]
        return affine


def render(phantom: Phantom, spec: SeriesSpec) -> np.ndarray:
    """HU planes (slices, rows, columns) sampled from the phantom on each slice's plane."""
    row, col = spec.row_column()
    ij = np.arange(spec.matrix) * spec.pixel_spacing_mm
    in_plane = ij[:, None, None] * col + ij[None, :, None] * row
    return np.stack([phantom(origin + in_plane) for origin in spec.origins()]).astype(np.float32)


def _stored(hu: np.ndarray, spec: SeriesSpec) -> np.ndarray:
    stored = np.rint((hu - spec.rescale_intercept) / spec.rescale_slope)
    if spec.pad_outside_fov:
        n = hu.shape[-1]
        yy, xx = np.mgrid[:n, :n]
        outside = (yy - (n - 1) / 2) ** 2 + (xx - (n - 1) / 2) ** 2 > (n / 2) ** 2
        stored[outside] = PADDING_STORED
    return np.clip(stored, -32768, 32767).astype(np.int16)


def new_instance(sop_class_uid: str, sop_instance_uid: str | None = None) -> Dataset:
    """An empty Part 10 dataset of the given SOP class (fresh SOP Instance UID by default)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class_uid
    ds.file_meta.MediaStorageSOPInstanceUID = sop_instance_uid or generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    return ds


def _dataset(study: StudyInfo, spec: SeriesSpec, index: int, origin: np.ndarray) -> Dataset:
    row, col = spec.row_column()
    ds = new_instance(CTImageStorage, derived_uid(spec.series_uid, "image", index))
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate, ds.PatientSex = "", "O"
    ds.ReferringPhysicianName = ""
    ds.PatientPosition = "HFS"
    ds.PositionReferenceIndicator = ""
    ds.AccessionNumber = study.accession
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.FrameOfReferenceUID = study.frame_of_reference_uid
    ds.StudyID = "1"
    ds.SeriesNumber = spec.series_number
    ds.InstanceNumber = index + 1
    ds.AcquisitionNumber = 1
    ds.Modality = spec.modality
    ds.Manufacturer = spec.manufacturer
    ds.SeriesDescription = spec.description
    ds.BodyPartExamined = "HEAD"
    ds.ImageType = list(spec.image_type)
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col)]
    ds.ImagePositionPatient = [f"{v:.4f}" for v in origin]
    ds.PixelSpacing = [f"{spec.pixel_spacing_mm:.6f}"] * 2
    ds.SliceThickness = f"{spec.slice_thickness_mm or spec.table_increment_mm:g}"
    ds.GantryDetectorTilt = f"{spec.tilt_deg:g}"
    ds.ConvolutionKernel = spec.kernel
    ds.KVP = "120"
    if spec.contrast_agent:
        ds.ContrastBolusAgent = spec.contrast_agent
        ds.ContrastBolusRoute = "IV"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = spec.matrix
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = f"{spec.rescale_intercept:g}"
    ds.RescaleSlope = f"{spec.rescale_slope:g}"
    ds.RescaleType = "HU"
    if spec.pad_outside_fov:
        ds.PixelPaddingValue = PADDING_STORED
    ds.WindowCenter, ds.WindowWidth = "40", "80"
    return ds


def derived_uid(*parts: object) -> str:
    """A UID determined by ``parts``: the same inputs always give the same UID."""
    return generate_uid(entropy_srcs=[str(part) for part in parts])


def write_series(phantom: Phantom, spec: SeriesSpec, study: StudyInfo) -> list[Dataset]:
    """The series as in-memory datasets, in acquisition order, encoded as ``spec`` says."""
    return encode_series(render(phantom, spec), spec, study)


def encode_series(planes: np.ndarray, spec: SeriesSpec, study: StudyInfo) -> list[Dataset]:
    """Datasets of HU planes (slices, rows, columns) sampled on ``spec``'s geometry."""
    datasets = []
    for index, (origin, hu) in enumerate(zip(spec.origins(), planes, strict=True)):
        ds = _dataset(study, spec, index, origin)
        ds.PixelData = _stored(hu, spec).tobytes()
        if UID(spec.transfer_syntax).is_compressed:
            ds.compress(spec.transfer_syntax, generate_instance_uid=False)
        else:
            ds.file_meta.TransferSyntaxUID = spec.transfer_syntax
        datasets.append(ds)
    return datasets


def to_bytes(ds: Dataset) -> bytes:
    """A dataset as a DICOM Part 10 file."""
    buffer = BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _item(**attributes: object) -> Dataset:
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def write_enhanced_series(phantom: Phantom, spec: SeriesSpec, study: StudyInfo) -> Dataset:
    """The same series as one Enhanced CT (multi-frame) instance with functional groups."""
    frames = write_series(phantom, replace(spec, transfer_syntax=ExplicitVRLittleEndian), study)
    first = frames[0]
    ds = new_instance(EnhancedCTImageStorage)
    for keyword in (
        "PatientName", "PatientID", "AccessionNumber", "StudyDate", "StudyTime", "SeriesDate",
        "SeriesTime", "ContentDate", "ContentTime", "StudyInstanceUID", "SeriesInstanceUID",
        "FrameOfReferenceUID", "StudyID", "SeriesNumber", "Modality", "Manufacturer",
        "SeriesDescription", "BodyPartExamined", "SamplesPerPixel", "PhotometricInterpretation",
        "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
        "PixelPaddingValue", "GantryDetectorTilt", "KVP",
    ):  # fmt: skip
        if keyword in first:
            setattr(ds, keyword, first.data_element(keyword).value)
    ds.InstanceNumber = 1
    ds.ImageType = [*spec.image_type[:3], "NONE"][:4]
    ds.NumberOfFrames = len(frames)
    ds.SharedFunctionalGroupsSequence = [
        _item(
            PixelMeasuresSequence=[
                _item(PixelSpacing=first.PixelSpacing, SliceThickness=first.SliceThickness)
            ],
            PlaneOrientationSequence=[_item(ImageOrientationPatient=first.ImageOrientationPatient)],
            PixelValueTransformationSequence=[
                _item(
                    RescaleIntercept=first.RescaleIntercept,
                    RescaleSlope=first.RescaleSlope,
                    RescaleType="HU",
                )
            ],
            CTReconstructionSequence=[_item(ConvolutionKernel=spec.kernel)],
        )
    ]
    ds.PerFrameFunctionalGroupsSequence = [
        _item(
            PlanePositionSequence=[_item(ImagePositionPatient=frame.ImagePositionPatient)],
            FrameContentSequence=[_item(InStackPositionNumber=index + 1)],
        )
        for index, frame in enumerate(frames)
    ]
    ds.PixelData = b"".join(frame.PixelData for frame in frames)
    if UID(spec.transfer_syntax).is_compressed:
        ds.compress(spec.transfer_syntax, generate_instance_uid=False)
    return ds

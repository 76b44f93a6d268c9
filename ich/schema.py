"""Result models shared by the CLI, the Triton steps and the gateway (pydantic, torch-free).

One schema everywhere: what ``ich inspect --json`` prints is what the gateway will return for
the ingestion part of an analysis.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class IngestionWarning(_Model):
    """Something about the input that the user should know; the analysis still ran."""

    code: str = Field(description="Stable slug, e.g. 'gantry_tilt_corrected'.")
    message: str


class SkippedFile(_Model):
    """An input file that was not used, and why."""

    name: str
    reason: str


class SeriesSummary(_Model):
    """One series as found in the input, and whether it can be analysed."""

    study_uid: str
    series_uid: str
    series_number: int | None
    description: str
    modality: str
    image_type: list[str]
    orientation: str = Field(description="AXIAL, CORONAL, SAGITTAL or UNKNOWN.")
    plane_tilt_deg: float | None = Field(
        description="Angle between the image plane and a true axial plane."
    )
    images: int
    rows: int
    columns: int
    pixel_spacing_mm: tuple[float, float] | None
    slice_spacing_mm: float | None = Field(
        description="Distance between slice planes along their normal (not SliceThickness)."
    )
    slice_thickness_mm: float | None
    kernel: str
    kernel_class: str = Field(description="soft, sharp or unknown.")
    contrast: str | None = Field(description="Why the series looks contrast-enhanced, if it does.")
    transfer_syntax: str
    eligible: bool
    reasons: list[str] = Field(description="Why the series is not eligible (empty if it is).")
    selected: bool = False


class VolumeSummary(_Model):
    """The decoded volume of the selected series, as `ich inspect --decode` shows it."""

    shape: tuple[int, int, int] = Field(description="(z, y, x) voxels.")
    spacing_mm: tuple[float, float, float] = Field(description="(z, y, x) voxel size.")
    interpolated_planes: int
    hu_percentiles_1_50_99: tuple[float, float, float]
    approximate: bool


class Problem(_Model):
    """A typed error, as the gateway will return it (RFC 7807 fields)."""

    type: str
    title: str
    detail: str


class InspectionReport(_Model):
    """What `ich inspect` finds: every series, the one selected, and what was skipped."""

    files: int
    images: int
    studies: int
    series: list[SeriesSummary]
    selected_series_uid: str | None
    skipped: list[SkippedFile]
    warnings: list[IngestionWarning]
    error: Problem | None = None


class HemorrhageClass(StrEnum):
    """The three detected classes, as the paper groups them."""

    IPH = "IPH"
    EDH_SDH = "EDH/SDH"
    SAH = "SAH"

    @property
    def label(self) -> int:
        """Value in label volumes: 1 IPH, 2 EDH/SDH, 3 SAH (0 is background)."""
        return list(HemorrhageClass).index(self) + 1

    @classmethod
    def from_label(cls, label: int) -> HemorrhageClass:
        return list(cls)[label - 1]


class SizeStratum(StrEnum):
    """Size strata of the paper's Table 1: punctate < 0.01 mL, small 0.01-5.0 mL, medium
    5-25 mL, large > 25 mL (boundaries belong to the smaller stratum above punctate)."""

    PUNCTATE = "punctate"
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


class SliceMask(_Model):
    """One plane of a hemorrhage mask, run-length encoded on the analysed grid (radiological
    orientation, tilt corrected): map it back with ``Volume.to_source_pixel`` for DICOM SEG."""

    index: int = Field(description="Plane index k of the analysed volume (inferior first).")
    sop_instance_uid: str | None = Field(
        default=None,
        description="The source image the plane is, or None for an interpolated plane.",
    )
    frame_number: int | None = Field(
        default=None, description="1-based frame of a multi-frame source image."
    )
    rle: list[int] = Field(
        description="Alternating run lengths of 0 and 1 in row-major order, starting with 0."
    )


class Hemorrhage(_Model):
    """One 3D hemorrhage instance with its measurements."""

    id: int
    hemorrhage_class: HemorrhageClass
    score: float = Field(description="Highest detection score among its voxels (0-1).")
    volume_ml: float = Field(description="Voxels x pixel spacing x slice spacing (positions).")
    stratum: SizeStratum
    slices: int = Field(description="Number of planes it appears on.")
    extent_mm: tuple[float, float, float] = Field(description="(z, y, x) bounding-box size.")
    bbox_voxels: tuple[int, int, int, int, int, int] = Field(
        description="(k0, i0, j0, k1, i1, j1), stops exclusive."
    )
    bbox_lps_mm: tuple[float, float, float, float, float, float] = Field(
        description="(x0, y0, z0, x1, y1, z1) patient-coordinate box of the voxel edges."
    )
    centroid_lps_mm: tuple[float, float, float]
    abc2_ml: float | None = Field(
        default=None,
        description="Bedside ABC/2 estimate (IPH only; C weighted as Kothari 1996), for "
        "comparison.",
    )
    masks: list[SliceMask] = Field(default_factory=list)


class SliceDetection(_Model):
    """One detection on one plane, as part of a reported hemorrhage."""

    index: int = Field(description="Plane index k of the analysed volume (inferior first).")
    sop_instance_uid: str | None = Field(
        default=None, description="The source image the plane is, or None if interpolated."
    )
    frame_number: int | None = Field(default=None, description="1-based frame, multi-frame.")
    hemorrhage_class: HemorrhageClass
    score: float
    hemorrhage_id: int = Field(description="The hemorrhage (``Hemorrhage.id``) it belongs to.")
    box_pixels: tuple[int, int, int, int] = Field(
        description="(column0, row0, column1, row1) on the analysed plane, stops exclusive."
    )
    box_lps_mm: tuple[float, float, float, float, float, float] = Field(
        description="(x0, y0, z0, x1, y1, z1) patient-coordinate box of the pixel edges."
    )


class ModelInfo(_Model):
    """The model that produced a result, as SEG, SR and the gateway name it."""

    name: str
    version: str
    sha256: str | None = Field(default=None, description="Digest of the model's weights file.")


class ClassFinding(_Model):
    """Exam-level result for one class."""

    hemorrhage_class: HemorrhageClass
    probability: float
    flagged: bool
    threshold: float = Field(description="Operating threshold the flag used.")
    count: int
    total_volume_ml: float


class OperatingPoint(_Model):
    """Exam-level thresholds, chosen on validation data and stored with the model."""

    thresholds: dict[HemorrhageClass, float]
    any_ich: float
    source: str = Field(description="How the thresholds were chosen (data set, criterion).")

    @model_validator(mode="after")
    def _every_class(self) -> OperatingPoint:
        missing = [c.value for c in HemorrhageClass if c not in self.thresholds]
        if missing:
            raise ValueError(f"operating point has no threshold for {', '.join(missing)}")
        return self

    def reports(self, hemorrhage_class: HemorrhageClass, score: float) -> bool:
        """The one rule for a finding of a class (an instance, or the class's exam
        probability): reported, and flagged, when its score reaches the class threshold."""
        return score >= self.thresholds[hemorrhage_class]


class ExamResult(_Model):
    """Everything the analysis of one series says: flags, per-class findings, instances."""

    study_uid: str
    series_uid: str
    any_ich_probability: float
    any_ich_flagged: bool
    any_ich_threshold: float
    classes: list[ClassFinding]
    hemorrhages: list[Hemorrhage]
    detections: list[SliceDetection] = Field(
        default_factory=list,
        description="Per-plane detections of the reported hemorrhages, one per plane they "
        "cover, with pixel and patient-coordinate boxes.",
    )
    shape: tuple[int, int, int] = Field(description="(z, y, x) of the analysed volume.")
    spacing_mm: tuple[float, float, float]
    operating_point: OperatingPoint
    label_volume: str | None = Field(
        default=None,
        description="Optional label volume (z, y, x) uint8 (0 background, 1 IPH, 2 EDH/SDH, "
        "3 SAH), zlib-compressed and base64-encoded; see ich.quantify.decode_label_volume.",
    )
    warnings: list[IngestionWarning] = Field(default_factory=list)

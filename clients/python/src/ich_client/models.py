"""Typed results as the gateway's OpenAPI schema describes them (``GET /openapi.json``).

The models mirror the service's response schema field for field; the service's test suite
fails when the two drift apart. Unknown fields a newer gateway adds are ignored, so an older
SDK keeps reading newer answers.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Status(StrEnum):
    RECEIVING = "receiving"
    """DICOMweb STOW-RS: instances are arriving; queued after a quiet period."""
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Outputs(StrEnum):
    """State of the DICOM SEG, SR and overlays, made after the result is published."""

    NONE = "none"
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


class HemorrhageClass(StrEnum):
    IPH = "IPH"
    """Intraparenchymal."""
    EDH_SDH = "EDH/SDH"
    """Epidural or subdural."""
    SAH = "SAH"
    """Subarachnoid."""


class SizeStratum(StrEnum):
    """punctate < 0.01 mL, small 0.01-5 mL, medium 5-25 mL, large > 25 mL."""

    PUNCTATE = "punctate"
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


class IngestionWarning(_Frozen):
    """Something about the input worth knowing; the analysis still ran."""

    code: str
    message: str


class SliceMask(_Frozen):
    """One plane of a hemorrhage mask: alternating run lengths of 0 and 1, row-major, on the
    analysed grid (plane ``index``; ``sop_instance_uid`` is the source image, if any)."""

    index: int
    sop_instance_uid: str | None = None
    frame_number: int | None = None
    rle: list[int]


class Hemorrhage(_Frozen):
    """One 3D hemorrhage with its measurements."""

    id: int
    hemorrhage_class: HemorrhageClass
    score: float
    volume_ml: float
    stratum: SizeStratum
    slices: int
    extent_mm: tuple[float, float, float]
    bbox_voxels: tuple[int, int, int, int, int, int]
    bbox_lps_mm: tuple[float, float, float, float, float, float]
    centroid_lps_mm: tuple[float, float, float]
    abc2_ml: float | None = Field(default=None, description="Bedside ABC/2 estimate (IPH).")
    masks: list[SliceMask] = Field(default_factory=list)


class SliceDetection(_Frozen):
    """One detection on one plane: class, score and box in pixels and patient coordinates."""

    index: int
    sop_instance_uid: str | None = None
    frame_number: int | None = None
    hemorrhage_class: HemorrhageClass
    score: float
    hemorrhage_id: int
    box_pixels: tuple[int, int, int, int]
    box_lps_mm: tuple[float, float, float, float, float, float]


class ModelInfo(_Frozen):
    """The model that produced a result."""

    name: str
    version: str
    sha256: str | None = None


class ClassFinding(_Frozen):
    """Exam-level result for one class: probability, flag at the operating threshold, volume."""

    hemorrhage_class: HemorrhageClass
    probability: float
    flagged: bool
    threshold: float
    count: int
    total_volume_ml: float


class OperatingPoint(_Frozen):
    thresholds: dict[HemorrhageClass, float]
    any_ich: float
    source: str


class ExamResult(_Frozen):
    """What the analysis of one series says: flags, per-class findings, hemorrhages."""

    study_uid: str
    series_uid: str
    any_ich_probability: float
    any_ich_flagged: bool
    any_ich_threshold: float
    classes: list[ClassFinding]
    hemorrhages: list[Hemorrhage]
    detections: list[SliceDetection] = Field(default_factory=list)
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    operating_point: OperatingPoint
    label_volume: str | None = None
    warnings: list[IngestionWarning] = Field(default_factory=list)

    def finding(self, hemorrhage_class: HemorrhageClass | str) -> ClassFinding:
        """The exam-level finding of one class, e.g. ``result.finding("SAH").flagged``."""
        wanted = HemorrhageClass(hemorrhage_class)
        return next(c for c in self.classes if c.hemorrhage_class is wanted)


class Timings(_Frozen):
    queued_s: float
    selection_s: float
    inference_s: float
    total_s: float


class ProblemDetail(BaseModel):
    """RFC 7807 problem document; extra members (``instance``, ``analysis_id``) are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    title: str
    status: int
    detail: str

    @property
    def code(self) -> str:
        """The problem's slug, e.g. ``no-axial-series``."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]


class AnalysisRecord(BaseModel):
    """One submitted study as the gateway reports it: status and, when done, its result."""

    id: str
    status: Status
    source: str
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    result: ExamResult | None = None
    model: ModelInfo | None = None
    warnings: list[IngestionWarning] = Field(default_factory=list)
    timings: Timings | None = None
    problem: ProblemDetail | None = None
    outputs: Outputs = Outputs.NONE
    links: dict[str, str] = Field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        """Done or failed: polling it again will not change the result."""
        return self.status in (Status.DONE, Status.FAILED)


class WorklistItem(BaseModel):
    """One study of the triage worklist (``Client.worklist``): where it stands, what was found.

    ``group`` is the reading order: positive, pending, failed, negative."""

    id: str
    group: str
    status: Status
    source: str
    created: datetime
    finished: datetime | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    any_ich_flagged: bool | None = None
    any_ich_probability: float | None = None
    total_volume_ml: float | None = None
    classes: list[ClassFinding] = Field(default_factory=list)
    problem: str | None = None
    link: str


class ViewerLink(_Frozen):
    """A short-lived link opening the analysis's viewer page in a browser, no key needed."""

    url: str
    expires_at: datetime


class Health(_Frozen):
    """``/healthz`` and ``/readyz`` together."""

    live: bool
    ready: bool
    checks: dict[str, bool] = Field(default_factory=dict)

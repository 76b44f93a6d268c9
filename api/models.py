"""The gateway's response models (pydantic): what the OpenAPI schema and the SDK describe."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from ich.schema import ExamResult, IngestionWarning, ModelInfo


class Status(StrEnum):
    RECEIVING = "receiving"
    """STOW-RS: instances are arriving; the analysis is queued after a quiet period."""
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


class Timings(BaseModel):
    queued_s: float = Field(description="From acceptance to a worker taking it.")
    selection_s: float = Field(description="Header scan and series selection in the gateway.")
    inference_s: float = Field(description="The Triton ensemble: decode, model, measurements.")
    total_s: float = Field(description="From acceptance to the result.")


class ProblemDetail(BaseModel):
    """RFC 7807 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str


class Analysis(BaseModel):
    """One submitted study: its status and, when done, its result."""

    id: str
    status: Status
    source: str = Field(description="upload (POST /v1/analyses) or stow (DICOMweb).")
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    result: ExamResult | None = Field(
        None, description="Flags, probabilities, detections, hemorrhages with volumes, masks."
    )
    model: ModelInfo | None = None
    warnings: list[IngestionWarning] = Field(default_factory=list)
    timings: Timings | None = None
    problem: ProblemDetail | None = Field(None, description="Why the analysis failed.")
    outputs: Outputs = Outputs.NONE
    links: dict[str, str] = Field(default_factory=dict)


class AnalysisList(BaseModel):
    analyses: list[Analysis]

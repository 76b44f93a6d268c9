"""The gateway's response models (pydantic): what the OpenAPI schema and the SDK describe."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from ich.schema import ClassFinding, ExamResult, IngestionWarning, ModelInfo


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

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "/v1/problems/no-axial-series",
                    "title": "No axial CT series",
                    "status": 422,
                    "detail": "No axial CT series in the input; only series 2 'SAG MPR': "
                    "orientation SAGITTAL. Send the axial non-contrast head CT series.",
                    "instance": "/v1/analyses/7d0c7f2e-3c1a-4a51-9a39-2f4f3f1d9b10",
                }
            ]
        },
    )

    type: str
    title: str
    status: int
    detail: str


EXAMPLE_ID = "7d0c7f2e-3c1a-4a51-9a39-2f4f3f1d9b10"
EXAMPLE_ANALYSIS = {
    "id": EXAMPLE_ID,
    "status": "done",
    "source": "upload",
    "created": "2026-11-27T05:40:12.113Z",
    "started": "2026-11-27T05:40:12.120Z",
    "finished": "2026-11-27T05:40:13.470Z",
    "result": {
        "study_uid": "1.2.826.0.1.3680043.8.498.1",
        "series_uid": "1.2.826.0.1.3680043.8.498.2",
        "any_ich_probability": 0.97,
        "any_ich_flagged": True,
        "any_ich_threshold": 0.5,
        "classes": [
            {
                "hemorrhage_class": c,
                "probability": p,
                "flagged": p >= 0.5,
                "threshold": 0.5,
                "count": int(p >= 0.5),
                "total_volume_ml": v,
            }
            for c, p, v in (("IPH", 0.97, 12.4), ("EDH/SDH", 0.04, 0.0), ("SAH", 0.11, 0.0))
        ],
        "hemorrhages": [
            {
                "id": 1,
                "hemorrhage_class": "IPH",
                "score": 0.97,
                "volume_ml": 12.4,
                "stratum": "medium",
                "slices": 4,
                "extent_mm": [20.0, 31.5, 27.0],
                "bbox_voxels": [11, 180, 290, 15, 243, 344],
                "bbox_lps_mm": [20.1, -15.2, 10.0, 47.1, 16.3, 30.0],
                "centroid_lps_mm": [33.6, 0.4, 20.0],
                "abc2_ml": 10.9,
                "masks": [
                    {
                        "index": 12,
                        "sop_instance_uid": "1.2.826.0.1.3680043.8.498.14",
                        "frame_number": None,
                        "rle": [92450, 12, 500, 15],
                    }
                ],
            }
        ],
        "detections": [
            {
                "index": 12,
                "sop_instance_uid": "1.2.826.0.1.3680043.8.498.14",
                "frame_number": None,
                "hemorrhage_class": "IPH",
                "score": 0.97,
                "hemorrhage_id": 1,
                "box_pixels": [290, 180, 344, 243],
                "box_lps_mm": [20.1, -15.2, 22.5, 47.1, 16.3, 27.5],
            }
        ],
        "shape": [32, 512, 512],
        "spacing_mm": [5.0, 0.49, 0.49],
        "operating_point": {
            "thresholds": {"IPH": 0.5, "EDH/SDH": 0.5, "SAH": 0.5},
            "any_ich": 0.5,
            "source": "validation set, 97.5% specificity",
        },
        "warnings": [
            {"code": "files_skipped", "message": "1 file(s) not used: 1 non-image object."}
        ],
    },
    "model": {"name": "ich-cpu-default", "version": "1", "sha256": "539d28ba" + "0" * 56},
    "warnings": [{"code": "files_skipped", "message": "1 file(s) not used: 1 non-image object."}],
    "timings": {"queued_s": 0.007, "selection_s": 0.09, "inference_s": 1.21, "total_s": 1.31},
    "problem": None,
    "outputs": "ready",
    "links": {
        "self": f"/v1/analyses/{EXAMPLE_ID}",
        "seg": f"/v1/analyses/{EXAMPLE_ID}/seg",
        "sr": f"/v1/analyses/{EXAMPLE_ID}/sr",
        "overlays": f"/v1/analyses/{EXAMPLE_ID}/overlays/{{n}}.png",
    },
}
"""A done analysis as the API returns it (one hemorrhage, one mask plane, abbreviated)."""


class Analysis(BaseModel):
    """One submitted study: its status and, when done, its result."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_ANALYSIS]})

    id: str
    status: Status
    source: str = Field(
        description="upload (POST /v1/analyses), stow (DICOMweb STOW-RS), dimse (DICOM "
        "C-STORE) or dicomweb (pulled by QIDO-RS/WADO-RS)."
    )
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


class WorklistItem(BaseModel):
    """One study of the triage worklist: where it stands and what was found."""

    id: str
    group: str = Field(description="positive, pending, failed or negative (the reading order).")
    status: Status
    source: str
    created: datetime
    finished: datetime | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    any_ich_flagged: bool | None = None
    any_ich_probability: float | None = None
    total_volume_ml: float | None = Field(None, description="All hemorrhages, every class.")
    classes: list[ClassFinding] = Field(
        default_factory=list, description="Flag, probability and volume of each class."
    )
    problem: str | None = Field(None, description="Why it could not be analysed.")
    link: str


class ViewerLink(BaseModel):
    """A short-lived link that opens the viewer of one analysis in a browser, no key needed."""

    url: str = Field(description="Open it before expires_at; it signs nothing else in.")
    expires_at: datetime = Field(description="After this the link and its page stop working.")


class Worklist(BaseModel):
    studies: list[WorklistItem]

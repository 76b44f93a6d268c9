"""Result models shared by the CLI, the Triton steps and the gateway (pydantic, torch-free).

One schema everywhere: what ``ich inspect --json`` prints is what the gateway will return for
the ingestion part of an analysis.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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

"""The configurable rules for choosing and assembling the series to analyse."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SelectionPolicy(BaseModel):
    """Which series is analysed, and how strict geometry checks are.

    Defaults follow the paper's input: an original, non-contrast, axial head CT reconstructed
    with a soft-tissue kernel at 2.5-5 mm, with thin series accepted when nothing better exists.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    modalities: tuple[str, ...] = Field(("CT",), description="Accepted Modality values.")
    max_axial_tilt_deg: float = Field(
        35.0, ge=0, le=90, description="Largest plane tilt still treated as axial (gantry tilt)."
    )
    allow_contrast: bool = Field(False, description="Accept contrast-enhanced series.")
    allow_derived: bool = Field(False, description="Accept DERIVED/SECONDARY images (MPR, MIP).")
    min_slices: int = Field(5, ge=1, description="The model's input is 5 contiguous slices.")
    preferred_thickness_mm: tuple[float, float] = Field(
        (2.5, 5.0), description="Slice spacing range preferred, as in the paper."
    )
    accept_thin: bool = Field(True, description="Accept series thinner than the preferred range.")
    max_gap_mm: float = Field(
        10.0,
        gt=0,
        description="Largest distance between neighbouring slices that is "
        "interpolated; a wider gap would corrupt volumes and is refused.",
    )
    fallback_pixel_spacing_mm: float = Field(
        0.45, gt=0, description="Used when no spacing tag exists (volumes become approximate)."
    )
    fallback_slice_spacing_mm: float = Field(
        5.0, gt=0, description="Used when slice positions and thickness are both missing."
    )
    study_uid: str | None = Field(None, description="Analyse this study only.")
    series_uid: str | None = Field(None, description="Analyse this series, if it is eligible.")

"""Eligibility of each series and the choice of the one to analyse.

The paper's pipeline had to find the right series among everything a scanner sends
(localizers, bone reconstructions, contrast phases, reformats). Each series is checked against
a :class:`SelectionPolicy`; the reasons a series is not eligible are kept for the report, and
when nothing is eligible the most specific typed error says what to send instead.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from pydicom.uid import UID

from ich.dicom.classify import (
    KernelClass,
    axial_tilt_deg,
    classify_kernel,
    contrast_evidence,
    orientation_label,
)
from ich.dicom.errors import (
    AmbiguousStudyError,
    DicomInputError,
    NoAxialSeriesError,
    NoCtSeriesError,
    NoEligibleSeriesError,
    SeriesGeometryError,
    TooFewSlicesError,
)
from ich.dicom.geometry import SliceGrid, plan_grid
from ich.dicom.policy import SelectionPolicy
from ich.dicom.series import Series
from ich.logs import uid_digest
from ich.schema import IngestionWarning, SeriesSummary

if TYPE_CHECKING:  # a scan is what selection chooses from; ingestion builds both
    from ich.dicom.ingest import Scan

log = logging.getLogger(__name__)

_LOCALIZER_DESC = re.compile(r"SCOUT|TOPO|LOCALI[SZ]ER|SURVIEW|SCANOGRAM|\bPILOT\b")


class Why(StrEnum):
    """Categories of exclusion, so the error raised can be as specific as the input allows."""

    MODALITY = "modality"
    NOT_IMAGE = "not-image"
    """Not a diagnostic image at all (screen capture, localizer, unsupported multi-frame)."""
    ORIENTATION = "orientation"
    SLICES = "slices"
    GEOMETRY = "geometry"
    OTHER = "other"


@dataclass(frozen=True)
class Candidate:
    """A series, its summary for the report, and its grid when the geometry is usable."""

    series: Series
    summary: SeriesSummary
    grid: SliceGrid | None
    why: tuple[Why, ...]


def _exclusions(series: Series, policy: SelectionPolicy) -> list[tuple[Why, str]]:
    first = series.first
    out: list[tuple[Why, str]] = []
    if first.modality not in policy.modalities:
        out.append(
            (
                Why.MODALITY,
                f"modality {first.modality or 'missing'}, not {'/'.join(policy.modalities)}",
            )
        )
    if first.samples_per_pixel != 1:
        out.append((Why.NOT_IMAGE, "colour images (screen capture), not CT values"))
    if first.number_of_frames > 1 and first.frame is None:
        out.append(
            (
                Why.NOT_IMAGE,
                "multi-frame images without per-frame functional groups; send the "
                "single-frame CT series",
            )
        )
    if "LOCALIZER" in first.image_type or _LOCALIZER_DESC.search(first.series_description.upper()):
        out.append((Why.NOT_IMAGE, "localizer/scout"))
    elif (
        not policy.allow_derived
        and first.image_type
        and (first.image_type[0] != "ORIGINAL" or "SECONDARY" in first.image_type[1:2])
    ):
        out.append((Why.OTHER, f"derived images (ImageType {'/'.join(first.image_type)})"))
    if first.orientation is not None:
        tilt = axial_tilt_deg(first.orientation)
        if tilt > policy.max_axial_tilt_deg:
            label = orientation_label(first.orientation)
            what = "oblique" if label == "AXIAL" else label.lower()
            out.append(
                (Why.ORIENTATION, f"{what} orientation ({tilt:.0f} degrees from axial), not axial")
            )
    evidence = contrast_evidence(
        first.contrast_agent, first.contrast_route, first.series_description
    )
    if evidence and not policy.allow_contrast:
        out.append((Why.OTHER, f"contrast-enhanced: {evidence}"))
    if len(series.stack) < policy.min_slices:
        out.append(
            (
                Why.SLICES,
                f"{len(series.stack)} image(s); at least {policy.min_slices} "
                "contiguous slices are needed",
            )
        )
    thickness = first.slice_thickness
    if not policy.accept_thin and thickness and thickness < policy.preferred_thickness_mm[0]:
        out.append((Why.OTHER, f"thin series ({thickness:g} mm) not accepted by the policy"))
    if policy.study_uid and series.study_uid != policy.study_uid:
        out.append((Why.OTHER, "not the requested study"))
    if policy.series_uid and series.series_uid != policy.series_uid:
        out.append((Why.OTHER, "not the requested series"))
    return out


def evaluate(series: Series, policy: SelectionPolicy) -> Candidate:
    """Check one series against the policy and plan its grid."""
    exclusions = _exclusions(series, policy)
    grid: SliceGrid | None = None
    try:
        grid = plan_grid(series.stack, policy)
    except SeriesGeometryError as exc:
        exclusions.append((Why.GEOMETRY, exc.message))
    distinct = len(grid.instances) if grid else len(series.stack)
    if len(series.stack) >= policy.min_slices > distinct:
        exclusions.append(
            (
                Why.SLICES,
                f"{distinct} distinct slice position(s) among "
                f"{len(series.stack)} images; at least {policy.min_slices} are needed",
            )
        )
    first = series.first
    summary = SeriesSummary(
        study_uid=series.study_uid,
        series_uid=series.series_uid,
        series_number=first.series_number,
        description=first.series_description,
        modality=first.modality,
        image_type=list(first.image_type),
        orientation=orientation_label(first.orientation),
        plane_tilt_deg=round(axial_tilt_deg(first.orientation), 2) if first.orientation else None,
        images=series.images,
        rows=first.rows,
        columns=first.columns,
        pixel_spacing_mm=first.pixel_spacing,
        slice_spacing_mm=round(grid.spacing_mm[0], 4) if grid and len(series.stack) > 1 else None,
        slice_thickness_mm=first.slice_thickness,
        kernel=first.kernel,
        kernel_class=classify_kernel(first.kernel, first.series_description).value,
        contrast=contrast_evidence(
            first.contrast_agent, first.contrast_route, first.series_description
        ),
        transfer_syntax=UID(first.transfer_syntax_uid).name,
        eligible=not exclusions,
        reasons=[text for _, text in exclusions],
    )
    return Candidate(series, summary, grid, tuple(why for why, _ in exclusions))


def rank_key(candidate: Candidate, policy: SelectionPolicy) -> tuple[int, int, int]:
    """Lower is better: soft-tissue kernel, then preferred thickness, then most slices."""
    kernel_rank = {KernelClass.SOFT: 0, KernelClass.UNKNOWN: 1, KernelClass.SHARP: 2}[
        KernelClass(candidate.summary.kernel_class)
    ]
    thickness = candidate.summary.slice_thickness_mm or candidate.summary.slice_spacing_mm or 0.0
    low, high = policy.preferred_thickness_mm
    thickness_rank = 0 if low - 0.01 <= thickness <= high + 0.01 else 1 if thickness < low else 2
    return kernel_rank, thickness_rank, -len(candidate.series.stack)


def _listing(candidates: Sequence[Candidate]) -> str:
    return "; ".join(
        f"series {c.summary.series_number or '?'} {c.summary.description!r}: "
        f"{', '.join(c.summary.reasons)}"
        for c in candidates
    )


def _raise_for_none(candidates: Sequence[Candidate], policy: SelectionPolicy) -> None:
    accepted = [c for c in candidates if Why.MODALITY not in c.why]
    if not accepted:
        found = sorted({c.summary.modality or "none" for c in candidates})
        raise NoCtSeriesError(
            f"No {'/'.join(policy.modalities)} images in the input (modalities found: "
            f"{', '.join(found)}). Send the non-contrast head CT series."
        )
    # Screen captures, localizers and the like must not hide the real problem of the images.
    plain = [c for c in accepted if Why.NOT_IMAGE not in c.why] or accepted
    oriented = [c for c in plain if c.series.first.orientation is not None] or plain
    axial = [c for c in oriented if Why.ORIENTATION not in c.why]
    if not axial:
        raise NoAxialSeriesError(
            "No axial CT series in the input; only "
            + _listing(accepted)
            + ". Send the axial non-contrast head CT series."
        )
    if all(set(c.why) == {Why.SLICES} for c in axial):
        most = max(len(c.series.stack) for c in axial)
        raise TooFewSlicesError(
            f"The axial CT series hold at most {most} image(s); the model needs at least "
            f"{policy.min_slices} contiguous slices. Send the whole series, not single images."
        )
    if all(set(c.why) == {Why.GEOMETRY} for c in axial):
        raise SeriesGeometryError("; ".join(r for c in axial for r in c.summary.reasons))
    raise NoEligibleSeriesError(
        "No series can be analysed: "
        + _listing(candidates)
        + ". Send an original, non-contrast axial head CT series."
    )


def choose(candidates: Sequence[Candidate], policy: SelectionPolicy) -> Candidate:
    """The best eligible series.

    Raises:
        NoCtSeriesError, NoAxialSeriesError, TooFewSlicesError, SeriesGeometryError,
            NoEligibleSeriesError: nothing is eligible (the most specific applies).
        AmbiguousStudyError: eligible series belong to more than one study.
    """
    eligible = [c for c in candidates if c.summary.eligible]
    if not eligible:
        _raise_for_none(candidates, policy)
    studies = sorted({c.series.study_uid for c in eligible})
    if len(studies) > 1:
        raise AmbiguousStudyError(
            f"The input holds {len(studies)} studies with eligible series "
            f"(digests {', '.join(uid_digest(s) for s in studies)}); send one study at a time "
            "or name the study to analyse."
        )
    return min(eligible, key=lambda c: rank_key(c, policy))


@dataclass(frozen=True)
class Selection:
    """The chosen series with its grid, every candidate for the report, and all warnings."""

    scan: Scan
    candidates: tuple[Candidate, ...]
    chosen: Candidate
    warnings: tuple[IngestionWarning, ...]


def _scan_warnings(result: Scan, chosen: Candidate) -> list[IngestionWarning]:
    warnings: list[IngestionWarning] = []
    if result.skipped:
        reasons = Counter(s.kind.value for s in result.skipped)
        warnings.append(
            IngestionWarning(
                code="files_skipped",
                message=f"{len(result.skipped)} file(s) not used: "
                + ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
                + ".",
            )
        )
    if result.studies > 1:
        warnings.append(
            IngestionWarning(
                code="other_studies",
                message=f"The input holds {result.studies} studies; analysed study "
                f"{chosen.series.study_uid}, the only one with an eligible series.",
            )
        )
    return warnings


def select(result: Scan, policy: SelectionPolicy | None = None) -> Selection:
    """Evaluate every series and choose the one to analyse (headers only).

    Raises:
        DicomInputError: a subclass saying why no series can be analysed.
    """
    policy = policy or SelectionPolicy()
    return decide(result, tuple(evaluate(series, policy) for series in result.series), policy)


def decide(result: Scan, candidates: tuple[Candidate, ...], policy: SelectionPolicy) -> Selection:
    """Choose among evaluated candidates, with the scan's and the series' warnings.

    Raises:
        DicomInputError: a subclass saying why no series can be analysed.
    """
    try:
        chosen = choose(candidates, policy)
    except DicomInputError as exc:
        log.info("no series selected among %d: %s", len(candidates), exc.code)
        raise
    warnings = (*_scan_warnings(result, chosen), *chosen.series.warnings, *chosen.grid.warnings)
    log.info(
        "selected series %s of study %s: %d slices, %d of %d series eligible, warnings %s",
        uid_digest(chosen.series.series_uid),
        uid_digest(chosen.series.study_uid),
        len(chosen.grid.instances),
        sum(c.summary.eligible for c in candidates),
        len(candidates),
        ",".join(w.code for w in warnings) or "none",
    )
    return Selection(result, candidates, chosen, warnings)

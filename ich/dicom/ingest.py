"""Ingestion end to end: candidate files -> headers -> series -> selection -> volume.

:func:`scan` and :func:`~ich.dicom.selection.select` read headers only (what the gateway
needs); :func:`load` also decodes the selected series' pixels (what the model needs);
:func:`inspect` reports everything without raising on bad input, for ``ich inspect``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ich.dicom.errors import DicomInputError, NoDicomError, UnreadableDicomError
from ich.dicom.headers import InstanceHeader, Skipped, read_header
from ich.dicom.policy import SelectionPolicy
from ich.dicom.selection import decide, evaluate, select
from ich.dicom.series import Series, group_series
from ich.dicom.sources import InputItem, InputLimits, iter_sources
from ich.dicom.volume import Volume, load_volume
from ich.schema import IngestionWarning, InspectionReport, Problem, SkippedFile


@dataclass(frozen=True)
class Scan:
    """Every candidate file's header, grouped into series."""

    files: int
    headers: tuple[InstanceHeader, ...]
    series: tuple[Series, ...]
    skipped: tuple[Skipped, ...]

    @property
    def studies(self) -> int:
        return len({s.study_uid for s in self.series})


def scan(inputs: InputItem | Iterable[InputItem], limits: InputLimits | None = None) -> Scan:
    """Read the header of every candidate file.

    Raises:
        NoDicomError: no file is a DICOM image.
        UnreadableDicomError: no file is a usable image and some are corrupt or truncated.
        InputLimitError: the input exceeds ``limits``.
    """
    sources = iter_sources(inputs, limits)
    headers: list[InstanceHeader] = []
    skipped: list[Skipped] = []
    for source in sources:
        result = read_header(source)
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            headers += result
    series, repeats = group_series(headers)
    skipped += repeats
    if not series:
        detail = "; ".join(f"{s.name}: {s.reason}" for s in skipped[:5])
        more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
        error = UnreadableDicomError if any(s.unreadable for s in skipped) else NoDicomError
        raise error(
            f"None of the {len(sources)} file(s) is a usable DICOM image: {detail}{more}. "
            "Send the CT images as DICOM (.dcm) files, a zip of them, or a folder."
        )
    return Scan(len(sources), tuple(headers), tuple(series), tuple(skipped))


def load(
    inputs: InputItem | Iterable[InputItem],
    policy: SelectionPolicy | None = None,
    limits: InputLimits | None = None,
) -> Volume:
    """The selected series of ``inputs`` as a :class:`Volume` in HU.

    Raises:
        DicomInputError: a subclass saying what is wrong with the input and what to send.
    """
    selection = select(scan(inputs, limits), policy)
    chosen = selection.chosen
    return load_volume(
        chosen.grid, chosen.series.study_uid, chosen.series.series_uid, selection.warnings
    )


def _problem(exc: DicomInputError) -> Problem:
    return Problem(type=exc.code, title=exc.title, detail=exc.message)


def inspect(
    inputs: InputItem | Iterable[InputItem],
    policy: SelectionPolicy | None = None,
    limits: InputLimits | None = None,
) -> InspectionReport:
    """Everything ingestion finds, with the error (if any) recorded instead of raised."""
    policy = policy or SelectionPolicy()
    try:
        result = scan(inputs, limits)
    except DicomInputError as exc:
        return InspectionReport(
            files=0,
            images=0,
            studies=0,
            series=[],
            selected_series_uid=None,
            skipped=[],
            warnings=[],
            error=_problem(exc),
        )
    candidates = tuple(evaluate(series, policy) for series in result.series)
    chosen_uid: str | None = None
    warnings: tuple[IngestionWarning, ...] = ()
    error: Problem | None = None
    try:
        selection = decide(result, candidates, policy)
        chosen_uid, warnings = selection.chosen.series.series_uid, selection.warnings
    except DicomInputError as exc:
        error = _problem(exc)
    return InspectionReport(
        files=result.files,
        images=len(result.headers),
        studies=result.studies,
        series=[
            c.summary.model_copy(update={"selected": c.series.series_uid == chosen_uid})
            for c in candidates
        ],
        selected_series_uid=chosen_uid,
        skipped=[SkippedFile(name=s.name, reason=s.reason) for s in result.skipped],
        warnings=list(warnings),
        error=error,
    )

"""Typed errors of DICOM ingestion, each with a message that says what to send instead."""

from __future__ import annotations

from ich.errors import IchError


class DicomInputError(IchError):
    """The input cannot be analysed as a head CT series."""

    code = "dicom-input"
    title = "Unusable DICOM input"


class NoDicomError(DicomInputError):
    """Nothing in the input is a readable DICOM image."""

    code = "no-dicom"
    title = "No DICOM images"


class UnreadableDicomError(DicomInputError):
    """A file that claims to be DICOM cannot be parsed (truncated or corrupt)."""

    code = "unreadable-dicom"
    title = "Unreadable DICOM file"


class NoCtSeriesError(DicomInputError):
    """Images were found, but none is CT."""

    code = "no-ct-series"
    title = "No CT series"


class NoAxialSeriesError(DicomInputError):
    """CT images were found, but no series is axial."""

    code = "no-axial-series"
    title = "No axial CT series"


class TooFewSlicesError(DicomInputError):
    """The only candidate series has fewer slices than the model's 5-slice input needs."""

    code = "too-few-slices"
    title = "Too few slices"


class NoEligibleSeriesError(DicomInputError):
    """Axial CT series exist, but each was excluded for a stated reason."""

    code = "no-eligible-series"
    title = "No eligible series"


class AmbiguousStudyError(DicomInputError):
    """Several studies hold eligible series; the caller must say which one to analyse."""

    code = "ambiguous-study"
    title = "Several studies in one request"


class SeriesGeometryError(DicomInputError):
    """The slices cannot be put on one grid without corrupting volumes (gaps, mixed geometry)."""

    code = "series-geometry"
    title = "Inconsistent series geometry"


class PixelDataError(DicomInputError):
    """Pixel data cannot be decoded (truncated, or a transfer syntax with no decoder)."""

    code = "pixel-data"
    title = "Undecodable pixel data"


class InputLimitError(DicomInputError):
    """The input exceeds a configured size limit (file count, bytes, archive expansion)."""

    code = "input-limit"
    title = "Input too large"

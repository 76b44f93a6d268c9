"""DICOM ingestion for head CT: discovery, series selection, geometry and HU (torch-free).

Typical use::

    from ich.dicom import load
    volume = load("study.zip")          # the selected series, in HU, on an orthogonal grid
    volume.hu.shape, volume.spacing_mm, volume.warnings
"""

import pydicom.config

from ich.dicom.errors import (
    AmbiguousStudyError,
    DicomInputError,
    InputLimitError,
    NoAxialSeriesError,
    NoCtSeriesError,
    NoDicomError,
    NoEligibleSeriesError,
    PixelDataError,
    SeriesGeometryError,
    TooFewSlicesError,
    UnreadableDicomError,
)
from ich.dicom.ingest import Scan, inspect, load, scan
from ich.dicom.policy import SelectionPolicy
from ich.dicom.selection import Selection, select
from ich.dicom.sources import InputLimits
from ich.dicom.volume import Volume, load_volume

# Ingestion checks every value it uses; pydicom's own per-value validation would only add
# warnings (and log lines quoting header values) for the many files that bend the standard.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE

__all__ = [
    "AmbiguousStudyError",
    "DicomInputError",
    "InputLimitError",
    "InputLimits",
    "NoAxialSeriesError",
    "NoCtSeriesError",
    "NoDicomError",
    "NoEligibleSeriesError",
    "PixelDataError",
    "Scan",
    "Selection",
    "SelectionPolicy",
    "SeriesGeometryError",
    "TooFewSlicesError",
    "UnreadableDicomError",
    "Volume",
    "inspect",
    "load",
    "load_volume",
    "scan",
    "select",
]

"""The DICOM objects and pictures of a finished analysis: SEG, SR (TID 1500), overlay PNGs and
the viewer's planes.

Made once from the spooled series after the result is published (so they never delay it) and
kept with the result; the spooled DICOM can then be deleted.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom

from api.intake import series_sources
from api.schemas import Analysis
from api.settings import Settings
from ich.dicom import load_volume, scan, select
from ich.overlays import overlay_png
from ich.reports import measurement_report, segmentation

SEG_FILE, SR_FILE, OVERLAYS, PLANES = "seg.dcm", "sr.dcm", "overlays", "planes"
LABEL_FILE = "label.npz"
"""The label volume Triton returned, kept from the analysis for the DICOM SEG."""
HU_RANGE = (-1024, 3071)
"""Stored HU are clipped to the 12-bit CT range: nothing a window shows lies outside it."""
PLANE_GZIP_LEVEL = 1
"""Fastest deflate: ``bench/viewer.py`` prints the time per plane and the share of the raw
size it keeps."""


def overlay_path(results: Path, plane: int) -> Path:
    return results / OVERLAYS / f"{plane}.png"


def plane_path(results: Path, plane: int) -> Path:
    return results / PLANES / f"{plane}.bin.gz"


def plane_bytes(hu_plane: np.ndarray, label_plane: np.ndarray) -> bytes:
    """One plane for the viewer, gzip-compressed: rows x columns int16 little-endian HU, then
    rows x columns uint8 labels (0 none, 1 IPH, 2 EDH/SDH, 3 SAH), both row-major."""
    hu = np.rint(np.clip(hu_plane, *HU_RANGE)).astype("<i2")
    raw = hu.tobytes() + label_plane.astype(np.uint8).tobytes()
    return gzip.compress(raw, compresslevel=PLANE_GZIP_LEVEL, mtime=0)


def write_outputs(
    files: Sequence[Path], results: Path, analysis: Analysis, settings: Settings
) -> None:
    """Write seg.dcm, sr.dcm, and one overlay PNG and one viewer plane per analysed plane into
    ``results``."""
    if analysis.result is None or analysis.model is None:
        raise ValueError(f"analysis {analysis.id} has no result")
    selection = select(scan(list(files), settings.input_limits))
    chosen = selection.chosen
    volume = load_volume(chosen.grid, chosen.series.study_uid, chosen.series.series_uid)
    label = np.load(results / LABEL_FILE)["label"]
    if label.shape != volume.shape:
        raise ValueError(f"label volume {label.shape} does not match the series {volume.shape}")
    datasets = []
    for source in series_sources(selection):
        with source.open() as stream:
            datasets.append(pydicom.dcmread(stream, stop_before_pixels=True))
    seg = segmentation(volume, label, datasets, analysis.model)
    seg.save_as(results / SEG_FILE)
    sr = measurement_report(analysis.result, datasets, analysis.model, seg=seg)
    sr.save_as(results / SR_FILE)
    for folder in (OVERLAYS, PLANES):
        (results / folder).mkdir(exist_ok=True)
    for k in range(volume.shape[0]):
        overlay_path(results, k).write_bytes(
            overlay_png(volume.hu[k], label[k], analysis.result, k)
        )
        plane_path(results, k).write_bytes(plane_bytes(volume.hu[k], label[k]))

"""DICOM objects a PACS stores for an analysis, and a quick per-plane overlay (torch-free).

The analysis result is JSON; a reading room sees DICOM. :func:`segmentation` draws the
reported hemorrhages onto the source images as a SEG, :func:`measurement_report` writes the
flags and volumes as a TID 1500 SR that refers to it. Both say that they are unverified
machine output (a triage aid no reader has checked), in their descriptions and flags.
"""

from ich.overlays import overlay_png
from ich.reports.common import ReportInputError
from ich.reports.seg import segmentation
from ich.reports.sr import measurement_report

__all__ = ["ReportInputError", "measurement_report", "overlay_png", "segmentation"]

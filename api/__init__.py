"""The FastAPI gateway: DICOM in, detections, masks, volumes and DICOM objects out."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ich-triage")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0"

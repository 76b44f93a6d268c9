"""Triton python model `ich_detector`: see ich.serving.backend.DetectorStep."""

from ich.serving.backend import DetectorStep as TritonPythonModel

__all__ = ["TritonPythonModel"]

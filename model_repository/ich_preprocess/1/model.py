"""Triton python model `ich_preprocess`: see ich.serving.backend.PreprocessStep."""

from ich.serving.backend import PreprocessStep as TritonPythonModel

__all__ = ["TritonPythonModel"]

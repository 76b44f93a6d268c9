"""Triton python model `ich_postprocess`: see ich.serving.backend.PostprocessStep."""

from ich.serving.backend import PostprocessStep as TritonPythonModel

__all__ = ["TritonPythonModel"]

"""What ``ich export`` can write, and for which Triton (torch-free: the CLI's option types)."""

from __future__ import annotations

from enum import StrEnum


class Format(StrEnum):
    torchscript = "torchscript"
    onnx = "onnx"
    tensorrt = "tensorrt"


WEIGHTS = {Format.torchscript: "model.pt", Format.onnx: "model.onnx", Format.tensorrt: "model.plan"}
PLATFORMS = {
    Format.torchscript: "pytorch_libtorch",
    Format.onnx: "onnxruntime_onnx",
    Format.tensorrt: "tensorrt_plan",
}
"""The GPU image's native backend for each format."""


class Target(StrEnum):
    cpu = "cpu"
    gpu = "gpu"

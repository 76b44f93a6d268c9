"""ONNX with a dynamic batch of blocks, checked against PyTorch with onnxruntime."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from export.errors import ExportError
from export.parity import Parity, compare
from ich.model.analyzer import torch_forward
from ich.model.contract import DETECTOR_OUTPUTS
from ich.model.detector import Detector

TORCHSCRIPT_EXPORTER_MAX_OPSET = 20
"""torch.onnx's TorchScript-based exporter, the one that converts torchvision's NMS and
RoIAlign and the data-dependent shapes of detection, writes opsets up to 20."""


def opset() -> int:
    """The newest opset both the installed onnx package and the exporter support."""
    import onnx

    return min(onnx.defs.onnx_opset_version(), TORCHSCRIPT_EXPORTER_MAX_OPSET)


def export_onnx(detector: Detector, path: Path, example: np.ndarray) -> int:
    """Write ``path``; returns the opset. ``example`` is a (blocks, ...) input; the batch
    dimension stays dynamic, the block size is fixed by it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    version = opset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks and the legacy exporter
        try:
            torch.onnx.export(
                detector.eval(),
                (torch.from_numpy(example),),
                str(path),
                dynamo=False,
                opset_version=version,
                input_names=["blocks"],
                output_names=list(DETECTOR_OUTPUTS),
                dynamic_axes={name: {0: "batch"} for name in ("blocks", *DETECTOR_OUTPUTS)},
            )
        except Exception as error:
            raise ExportError(f"ONNX export failed: {error}") from error
    return version


def check_onnx(path: Path, detector: Detector, blocks: np.ndarray) -> Parity:
    """onnxruntime (CPU) against PyTorch on the same blocks."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    candidate = session.run(None, {"blocks": blocks})
    return compare("onnxruntime-cpu", torch_forward(detector)(blocks), candidate)

"""TorchScript: the file Triton's python step (CPU) or ``pytorch_libtorch`` (GPU) loads."""

from __future__ import annotations

from pathlib import Path

import torch

from ich.model.analyzer import frozen_detector, quiet_jit
from ich.model.detector import Detector


def export_torchscript(detector: Detector, path: Path) -> None:
    """Scripted and frozen, device-neutral: libtorch loads it onto the GPU it serves, the CPU
    step optimises it for inference after loading, as ``ich analyze`` does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    module = frozen_detector(detector)
    with quiet_jit():
        torch.jit.save(module, str(path))

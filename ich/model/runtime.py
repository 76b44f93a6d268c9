"""In-process inference: a model file applied to an ingested volume (``ich analyze``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ich.dicom.volume import Volume
from ich.model.checkpoint import DEFAULT_MODEL, load_model
from ich.model.config import ModelConfig
from ich.model.detector import Detector
from ich.pipeline import finish, prepare
from ich.preprocess import BLOCK_PLANES, blocks
from ich.preprocess.outputs import DetectorOutputs
from ich.schema import ExamResult, OperatingPoint


def compile_detector(detector: Detector) -> torch.jit.ScriptModule:
    """TorchScript, frozen (batch norm folded into the convolutions) for CPU inference."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
        scripted = torch.jit.script(detector.eval())
        return torch.jit.optimize_for_inference(torch.jit.freeze(scripted))


def run_blocks(
    detector: torch.nn.Module, series_blocks: np.ndarray, per_call: int
) -> list[np.ndarray]:
    """The detector's five outputs (blocks, P, ...) for ``series_blocks``, ``per_call`` blocks
    a forward pass (memory stays bounded for long series). Shared by ``ich analyze`` and the
    Triton detector step, so both run the same batches for a study."""
    device = next(iter(detector.parameters()), torch.empty(0)).device
    parts = []
    with torch.inference_mode():
        for start in range(0, len(series_blocks), per_call):
            chunk = torch.from_numpy(series_blocks[start : start + per_call]).to(device)
            parts.append([t.cpu().numpy() for t in detector(chunk)])
    return [np.concatenate(column) for column in zip(*parts, strict=True)]


class Analyzer:
    """A loaded model: ``analyzer(volume)`` -> (exam result, label volume on its grid)."""

    def __init__(
        self,
        model: Path = DEFAULT_MODEL,
        block_planes: int = BLOCK_PLANES,
        per_call: int = 2,
        operating_point: OperatingPoint | None = None,
        compiled: bool = True,
    ) -> None:
        network, self.config, stored, self.provenance = load_model(model)
        self.operating_point = operating_point or stored
        self.block_planes, self.per_call = block_planes, per_call
        detector = Detector.for_config(network, self.config)
        self.detector = compile_detector(detector) if compiled else detector.eval()

    @classmethod
    def from_network(
        cls, detector: Detector, config: ModelConfig, operating_point: OperatingPoint
    ) -> Analyzer:
        """Wrap a network in training (no file, not compiled): for validation."""
        self = cls.__new__(cls)
        self.config, self.provenance = config, {}
        self.block_planes, self.per_call = BLOCK_PLANES, 2
        self.operating_point, self.detector = operating_point, detector
        return self

    def detect(self, series: np.ndarray) -> DetectorOutputs:
        """The detector over a prepared series, cut into blocks as the Triton step cuts it."""
        context = self.config.input.context
        found = run_blocks(self.detector, blocks(series, context, self.block_planes), self.per_call)
        return DetectorOutputs.from_blocks(found, series.shape[1] - context + 1)

    def __call__(
        self, volume: Volume, masks: bool = True, label_volume: bool = False
    ) -> tuple[ExamResult, np.ndarray]:
        prepared = prepare(volume, self.config.input)
        outputs = self.detect(prepared.series)
        return finish(volume, prepared.grid, outputs, self.operating_point, masks, label_volume)

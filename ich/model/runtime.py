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
from ich.preprocess.outputs import DetectorOutputs
from ich.schema import ExamResult, OperatingPoint


def compile_detector(detector: Detector) -> torch.jit.ScriptModule:
    """TorchScript, frozen (batch norm folded into the convolutions) for CPU inference."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
        scripted = torch.jit.script(detector.eval())
        return torch.jit.optimize_for_inference(torch.jit.freeze(scripted))


class Analyzer:
    """A loaded model: ``analyzer(volume)`` -> (exam result, label volume on its grid)."""

    def __init__(
        self,
        model: Path = DEFAULT_MODEL,
        batch: int = 32,
        operating_point: OperatingPoint | None = None,
        compiled: bool = True,
    ) -> None:
        network, self.config, stored, self.provenance = load_model(model)
        self.operating_point = operating_point or stored
        self.batch = batch
        detector = Detector.for_config(network, self.config)
        self.detector = compile_detector(detector) if compiled else detector.eval()

    @classmethod
    def from_network(
        cls, detector: Detector, config: ModelConfig, operating_point: OperatingPoint
    ) -> Analyzer:
        """Wrap a network in training (no file, not compiled): for validation."""
        self = cls.__new__(cls)
        self.config, self.provenance, self.batch = config, {}, 32
        self.operating_point, self.detector = operating_point, detector
        return self

    def detect(self, series: np.ndarray) -> DetectorOutputs:
        """The detector over a prepared series, ``batch`` planes (plus their context) at a time."""
        parts = []
        device = next(iter(self.detector.parameters()), torch.empty(0)).device
        extra = self.config.input.context - 1
        with torch.inference_mode():
            for start in range(0, series.shape[1] - extra, self.batch):
                chunk = series[:, start : start + self.batch + extra]
                found = self.detector(torch.from_numpy(chunk).to(device))
                parts.append(DetectorOutputs(*(t.cpu().numpy() for t in found)))
        return DetectorOutputs.concatenate(parts)

    def __call__(
        self, volume: Volume, masks: bool = True, label_volume: bool = False
    ) -> tuple[ExamResult, np.ndarray]:
        prepared = prepare(volume, self.config.input)
        outputs = self.detect(prepared.series)
        return finish(volume, prepared.grid, outputs, self.operating_point, masks, label_volume)

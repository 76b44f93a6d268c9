"""In-process inference: a model file applied to an ingested volume (``ich analyze``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ich.dicom.volume import Volume
from ich.model.checkpoint import DEFAULT_MODEL, load_model
from ich.model.config import ModelConfig
from ich.model.detector import Detector
from ich.pipeline import SeriesContext, finish, prepare
from ich.postprocess import DetectorOutputs
from ich.preprocess import BLOCK_PLANES, BLOCKS_PER_CALL, blocks, run_blocks
from ich.schema import ExamResult, OperatingPoint


@contextmanager
def quiet_jit() -> Iterator[None]:
    """Without torch.jit's deprecation notices: TorchScript is still what Triton's libtorch
    backend loads."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def frozen_detector(detector: Detector) -> torch.jit.ScriptModule:
    """TorchScript, frozen (batch norm folded into the convolutions): what export saves.

    Device-neutral; :func:`optimized_for_cpu` is applied after loading, since the graphs it
    rewrites (MKLDNN layouts) cannot be saved and loaded back.
    """
    with quiet_jit():
        return torch.jit.freeze(torch.jit.script(detector.eval()))


def optimized_for_cpu(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    with quiet_jit():
        return torch.jit.optimize_for_inference(module)


def compile_detector(detector: Detector) -> torch.jit.ScriptModule:
    """The detector as ``ich analyze`` and the Triton CPU step run it."""
    return optimized_for_cpu(frozen_detector(detector))


def torch_forward(
    detector: torch.nn.Module, device: torch.device | str | None = None
) -> Callable[[np.ndarray], list[np.ndarray]]:
    """``detector`` as a numpy function for :func:`run_blocks`, on ``device`` (default: its
    parameters'; a frozen module has none and needs it named when not on the CPU)."""
    if device is None:
        device = next(iter(detector.parameters()), torch.empty(0)).device

    def forward(chunk: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            return [t.cpu().numpy() for t in detector(torch.from_numpy(chunk).to(device))]

    return forward


class Analyzer:
    """A loaded model: ``analyzer(volume)`` -> (exam result, label volume on its grid)."""

    def __init__(
        self,
        model: Path = DEFAULT_MODEL,
        block_planes: int = BLOCK_PLANES,
        per_call: int = BLOCKS_PER_CALL,
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
        self.block_planes, self.per_call = BLOCK_PLANES, BLOCKS_PER_CALL
        self.operating_point, self.detector = operating_point, detector
        return self

    def detect(self, series: np.ndarray) -> DetectorOutputs:
        """The detector over a prepared series, cut into blocks as the Triton step cuts it."""
        context = self.config.input.context
        cut = blocks(series, context, self.block_planes)
        found = run_blocks(torch_forward(self.detector), cut, self.per_call)
        return DetectorOutputs.from_blocks(found, series.shape[1] - context + 1)

    def __call__(
        self, volume: Volume, masks: bool = True, label_volume: bool = False
    ) -> tuple[ExamResult, np.ndarray]:
        prepared = prepare(volume, self.config.input)
        outputs = self.detect(prepared.series)
        context = SeriesContext.of(volume, prepared)
        return finish(context, outputs, self.operating_point, masks, label_volume)

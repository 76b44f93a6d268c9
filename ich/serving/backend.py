"""The three python-backend models of the Triton repository, as classes its ``model.py`` files
name (``TritonPythonModel = PreprocessStep`` and so on).

Each request gets its own response: a bad study fails alone, with a Triton error whose message
starts with the project's error code (``no-dicom: ...``) so clients can tell what went wrong,
and the model stays loaded for the next request. ``triton_python_backend_utils`` exists only
inside the Triton python stub, so it is imported when a model starts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ich.errors import IchError
from ich.logs import uid_digest
from ich.model.contract import DETECTOR_OUTPUTS
from ich.preprocess import InputSpec, run_blocks
from ich.schema import OperatingPoint
from ich.serving.steps import postprocess, preprocess

log = logging.getLogger("ich.serving")


def problem_message(error: Exception) -> str:
    """``code: message`` for the project's errors; a plain note for anything else."""
    if isinstance(error, IchError):
        return f"{error.code}: {error.message}"
    return f"analysis-failed: {type(error).__name__}: {error}"


class _Step:
    """Common start-up and per-request error handling."""

    def initialize(self, args: dict[str, Any]) -> None:
        import triton_python_backend_utils as pb_utils

        self.pb = pb_utils
        self.config = json.loads(args["model_config"])
        self.parameters = {
            key: value["string_value"] for key, value in self.config.get("parameters", {}).items()
        }
        self.version_dir = Path(args["model_repository"]) / args["model_version"]
        self.setup()

    def setup(self) -> None:
        """Read parameters and load what the step needs, once per model instance."""

    def run(self, request: Any) -> list[Any]:
        """The output tensors of one request."""
        raise NotImplementedError

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._respond(request) for request in requests]

    def _respond(self, request: Any) -> Any:
        try:
            return self.pb.InferenceResponse(output_tensors=self.run(request))
        except Exception as error:  # one bad request must not take the model down
            if not isinstance(error, IchError):
                log.exception("%s failed", self.config["name"])
            return self.pb.InferenceResponse(
                output_tensors=[], error=self.pb.TritonError(problem_message(error))
            )

    def input(self, request: Any, name: str) -> np.ndarray:
        return self.pb.get_input_tensor_by_name(request, name).as_numpy()


class PreprocessStep(_Step):
    """``dicom`` (BYTES, one element a file) -> ``blocks`` (FP32) and ``context`` (BYTES)."""

    def setup(self) -> None:
        self.spec = InputSpec.model_validate_json(self.parameters["input_spec"])
        self.block_planes = int(self.parameters["block_planes"])
        self.max_blocks = int(self.parameters["max_blocks"])

    def run(self, request: Any) -> list[Any]:
        files = self.input(request, "dicom").reshape(-1)
        done = preprocess(list(files), self.spec, self.block_planes, self.max_blocks)
        log.info("preprocessed %d files into %d blocks", len(files), len(done.blocks))
        return [
            self.pb.Tensor("blocks", done.blocks),
            self.pb.Tensor("context", np.array([done.context], dtype=np.object_)),
        ]


class DetectorStep(_Step):
    """``blocks`` -> the five detector outputs, with the exported file in the version folder:
    TorchScript through torch, or ONNX through onnxruntime. Triton's dynamic batching hands
    it the requests queued while it was busy."""

    def setup(self) -> None:
        runtime = self.parameters.get("runtime", "torchscript")
        path = self.version_dir / self.parameters["file"]
        self.per_call = int(self.parameters["per_call"])
        threads = int(self.parameters.get("threads", "0"))
        if runtime == "torchscript":
            import torch

            from ich.model.analyzer import optimized_for_cpu, quiet_jit, torch_forward

            if threads:
                torch.set_num_threads(threads)
            with quiet_jit():
                module = torch.jit.load(str(path), map_location="cpu").eval()
            self.forward = torch_forward(optimized_for_cpu(module))
        elif runtime == "onnx":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
            self.forward = lambda chunk: session.run(None, {"blocks": chunk})
        else:
            raise ValueError(f"unknown detector runtime {runtime!r}: torchscript or onnx")

    def run(self, request: Any) -> list[Any]:
        """One request's blocks in ``per_call`` chunks, as ``ich analyze`` runs a study: a
        batch of queued requests is answered request by request, so each gets the same numbers
        as in-process and a failure stays with its own request."""
        outputs = run_blocks(self.forward, self.input(request, "blocks"), self.per_call)
        return [self.pb.Tensor(n, o) for n, o in zip(DETECTOR_OUTPUTS, outputs, strict=True)]


class PostprocessStep(_Step):
    """``context`` and the detector's outputs -> ``result`` (ExamResult JSON, BYTES) and
    ``label_volume`` (UINT8 on the analysed grid)."""

    def setup(self) -> None:
        self.operating_point = OperatingPoint.model_validate_json(
            self.parameters["operating_point"]
        )

    def run(self, request: Any) -> list[Any]:
        context = bytes(self.input(request, "context").reshape(-1)[0])
        outputs = [self.input(request, name) for name in DETECTOR_OUTPUTS]
        result, label = postprocess(context, outputs, self.operating_point)
        log.info("result for series %s", uid_digest(json.loads(context)["series_uid"]))
        return [
            self.pb.Tensor("result", np.array([result], dtype=np.object_)),
            self.pb.Tensor("label_volume", label),
        ]

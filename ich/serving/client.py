"""Sending a study to the ``ich_pipeline`` ensemble over gRPC or HTTP (torch-free)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np
from tritonclient.utils import InferenceServerException

from ich.dicom import InputLimits
from ich.dicom.sources import InputItem, iter_sources
from ich.errors import IchError
from ich.schema import ExamResult, ModelInfo

PIPELINE = "ich_pipeline"
DETECTOR = "ich_detector"
OUTPUTS = ("result", "label_volume")
_STEP_ERROR = re.compile(r"(?:in ensemble '[^']*', )?([a-z][a-z0-9_-]*): (.*)", re.DOTALL)


class RemoteAnalysisError(IchError):
    """The server refused the study; ``code`` is the project's error code it reported."""

    code = "remote-analysis-failed"
    title = "Analysis failed on the server"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


def study_files(inputs: InputItem | Iterable[InputItem], limits: InputLimits | None = None
                ) -> list[bytes]:  # fmt: skip
    """Every candidate file's bytes (folders walked, zips opened), in a stable order."""
    return [source.read_bytes() for source in iter_sources(inputs, limits or InputLimits())]


class PipelineClient:
    """``client.analyze(files)`` -> (result, label volume). ``url`` is ``host:port`` of the
    gRPC (default) or HTTP endpoint."""

    def __init__(self, url: str, protocol: str = "grpc", timeout_s: float = 600.0) -> None:
        self.url, self.protocol, self.timeout_s = url, protocol, timeout_s
        if protocol == "grpc":
            import tritonclient.grpc as module
        elif protocol == "http":
            import tritonclient.http as module
        else:
            raise ValueError(f"protocol must be grpc or http, got {protocol!r}")
        self._module: Any = module
        options = {} if protocol == "grpc" else {"network_timeout": timeout_s,
                                                  "connection_timeout": timeout_s}  # fmt: skip
        self._client = module.InferenceServerClient(url, **options)

    def analyze(self, files: list[bytes]) -> tuple[ExamResult, np.ndarray]:
        data = np.empty(len(files), dtype=np.object_)
        data[:] = files
        dicom = self._module.InferInput("dicom", [len(files)], "BYTES")
        if self.protocol == "http":  # binary tensors, not JSON lists of bytes
            dicom.set_data_from_numpy(data, binary_data=True)
            outputs = [self._module.InferRequestedOutput(n, binary_data=True) for n in OUTPUTS]
            options: dict[str, Any] = {}
        else:
            dicom.set_data_from_numpy(data)
            outputs = [self._module.InferRequestedOutput(n) for n in OUTPUTS]
            options = {"client_timeout": self.timeout_s}
        try:
            response = self._client.infer(PIPELINE, [dicom], outputs=outputs, **options)
        except InferenceServerException as error:
            raise _remote_error(error) from None
        except TimeoutError:
            raise RemoteAnalysisError(
                f"Triton did not answer within {self.timeout_s:g} s.", "analysis-timeout"
            ) from None
        except OSError as error:  # the HTTP client's refused or reset connections
            raise RemoteAnalysisError(
                f"Triton is unreachable at {self.url}: {error}", "triton-unavailable"
            ) from None
        result = ExamResult.model_validate_json(bytes(response.as_numpy("result").reshape(-1)[0]))
        return result, response.as_numpy("label_volume")

    def ready(self) -> bool:
        """True when the server answers and the pipeline is loaded (never raises)."""
        try:
            return bool(self._client.is_model_ready(PIPELINE))
        except Exception:  # refused, reset, timed out: all mean "not ready"
            return False

    def model_info(self) -> ModelInfo:
        """The served detector's name, pipeline version and weights digest (from the configs
        ``ich export`` wrote)."""
        try:
            config = self._client.get_model_config(DETECTOR)
            metadata = self._client.get_model_metadata(PIPELINE)
        except InferenceServerException as error:
            raise _remote_error(error) from None
        if self.protocol == "http":  # JSON dicts
            parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
            versions = metadata.get("versions", [])
        else:  # protobuf messages
            parameters = {k: v.string_value for k, v in config.config.parameters.items()}
            versions = list(metadata.versions)
        return ModelInfo(
            name=parameters.get("source_model", DETECTOR).removesuffix(".pt"),
            version=max(versions, key=int, default="1"),
            sha256=parameters.get("source_sha256"),
        )

    def close(self) -> None:
        self._client.close()


def _remote_error(error: InferenceServerException) -> RemoteAnalysisError:
    """The project's code and message out of Triton's wrapping of a step's error
    (``in ensemble 'ich_pipeline', no-dicom: ...``)."""
    text = error.message() or str(error)
    found = _STEP_ERROR.match(text)
    if found:
        return RemoteAnalysisError(found.group(2), found.group(1))
    if "DEADLINE_EXCEEDED" in str(error.status()):
        return RemoteAnalysisError(f"Triton did not answer in time: {text}", "analysis-timeout")
    if "UNAVAILABLE" in str(error.status()):
        return RemoteAnalysisError(f"Triton is unreachable: {text}", "triton-unavailable")
    return RemoteAnalysisError(f"Triton answered: {text}")

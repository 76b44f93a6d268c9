"""The gateway's side of Triton: one client per worker thread, readiness and model identity."""

from __future__ import annotations

import threading
from functools import cached_property

import numpy as np

from api.settings import Settings
from ich.schema import ExamResult, ModelInfo
from ich.serving.client import PipelineClient


class Inference:
    """``analyze(files)`` on the ``ich_pipeline`` ensemble; thread-safe (a client per thread,
    as tritonclient's HTTP client is not)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local = threading.local()

    @property
    def client(self) -> PipelineClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = PipelineClient(
                self.settings.triton_url,
                self.settings.triton_protocol,
                timeout_s=self.settings.analysis_timeout_s,
            )
            self._local.client = client
        return client

    def analyze(self, files: list[bytes]) -> tuple[ExamResult, np.ndarray]:
        """Raises RemoteAnalysisError with the step's code, triton-unavailable or
        analysis-timeout."""
        return self.client.analyze(files)

    def ready(self) -> bool:
        return self.client.ready()

    @cached_property
    def model(self) -> ModelInfo:
        """The served model, asked once (a new model means a restarted gateway)."""
        return self.client.model_info()

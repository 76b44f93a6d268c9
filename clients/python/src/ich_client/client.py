"""The synchronous client.

>>> from ich_client import Client
>>> with Client("http://127.0.0.1:8000", api_key="ich_...") as ich:  # doctest: +SKIP
...     analysis = ich.analyze("study/")          # a folder of DICOM files, a zip, or a list
...     analysis.result.any_ich_flagged, [h.volume_ml for h in analysis.result.hemorrhages]
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from pydantic import PrivateAttr

from ich_client import calls
from ich_client.calls import Call, Poll, Watcher
from ich_client.config import DEFAULT_WAIT_S, client_options
from ich_client.models import AnalysisRecord, Health, ViewerLink, WorklistItem
from ich_client.retries import Attempts, Retries
from ich_client.uploads import Progress, StudySource, prepare


class Analysis(AnalysisRecord):
    """An analysis as last read, bound to the :class:`Client` that read it."""

    _client: Client = PrivateAttr()

    def refresh(self) -> Analysis:
        return self._client.get(self.id)

    def wait(
        self,
        timeout: float = DEFAULT_WAIT_S,
        *,
        outputs: bool = False,
        watch: Watcher | None = None,
    ) -> Analysis:
        """See :meth:`Client.wait`."""
        return self._client.wait(self.id, timeout, outputs=outputs, watch=watch)

    def seg(self) -> bytes:
        return self._client.seg(self.id)

    def sr(self) -> bytes:
        return self._client.sr(self.id)

    def overlay(self, plane: int) -> bytes:
        return self._client.overlay(self.id, plane)

    def viewer_link(self) -> ViewerLink:
        return self._client.viewer_link(self.id)

    def delete(self) -> None:
        self._client.delete(self.id)


class Client:
    """Calls the gateway's REST API, with retries, typed results and typed errors.

    Args:
        url: the gateway, e.g. ``https://ich.hospital.org``.
        api_key: a key from ``ich keys create`` (sent as ``X-API-Key``), or
        token: an OAuth2 bearer token with the ``analyses:read``/``analyses:write`` scopes.
        timeout: seconds for connecting, sending and reading one answer (``httpx.Timeout``
            for finer control); waiting for an analysis has its own ``timeout``.
        retries: how 429/503 answers and broken connections are retried.
        transport: an ``httpx`` transport (proxies, mTLS, tests).
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        retries: Retries | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retries = retries or Retries()
        self._http = httpx.Client(
            transport=transport, **client_options(url, api_key, token, timeout)
        )

    def analyze(
        self,
        study: StudySource,
        *,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_S,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        progress: Progress | None = None,
    ) -> Analysis:
        """Send a study and, with ``wait``, return it analysed.

        Args:
            study: a folder (read recursively), a zip, one DICOM file, a list of files, or the
                bytes of a zip or DICOM file. Files stream from disk.
            wait: return the finished analysis (else at once, as :meth:`submit`).
            timeout: seconds to wait for the result.
            callback_url: the gateway POSTs the signed result there when it is ready.
            idempotency_key: generated when not given; pass a stable one (e.g. the accession
                number) to make resubmission from another process safe as well.
            progress: called with (bytes sent, bytes in all) during the upload.

        Raises:
            AnalysisFailedError: the study could not be analysed (the detail says why).
            WaitTimeoutError: no result within ``timeout``.
        """
        call = calls.submission(
            prepare(study),
            wait_s=timeout if wait else None,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
            progress=progress,
        )
        started = time.monotonic()
        analysis = self._analysis(self._send(call))
        if wait and not analysis.terminal:  # the gateway's own wait limit passed first
            analysis = self.wait(analysis, timeout - (time.monotonic() - started))
        return analysis

    def submit(
        self,
        study: StudySource,
        *,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        progress: Progress | None = None,
    ) -> Analysis:
        """Send a study and return at once (status ``queued``); then ``analysis.wait()``."""
        return self.analyze(
            study,
            wait=False,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
            progress=progress,
        )

    def wait(
        self,
        analysis: AnalysisRecord | str,
        timeout: float = DEFAULT_WAIT_S,
        *,
        outputs: bool = False,
        watch: Watcher | None = None,
    ) -> Analysis:
        """Poll until the analysis is done (and, with ``outputs``, its SEG/SR are made);
        ``watch`` sees the analysis at each look.

        Raises:
            AnalysisFailedError: it failed; ``error.analysis`` holds it.
            WaitTimeoutError: still running after ``timeout`` seconds.
        """
        poll = Poll(timeout, outputs, watch)
        while not poll.settled(current := self.get(analysis)):
            time.sleep(poll.pause(current))
        return current

    def get(self, analysis: AnalysisRecord | str) -> Analysis:
        return self._analysis(self._send(calls.read(analysis)))

    def list(self, limit: int = 50) -> list[Analysis]:
        """This client's analyses, newest first."""
        answer = self._send(calls.listing(limit)).json()
        return [self._bind(item) for item in answer["analyses"]]

    def worklist(self, hours: float = 24, limit: int = 100) -> list[WorklistItem]:
        """This client's studies of the last ``hours`` in reading order: positive first (by
        probability, then volume), then those still running, failed, negative."""
        answer = (self._send(calls.worklist(hours, limit))).json()
        return [WorklistItem.model_validate(item) for item in answer["studies"]]

    def delete(self, analysis: AnalysisRecord | str) -> None:
        """Remove the analysis and everything the gateway kept of it."""
        self._send(calls.delete(analysis))

    def seg(self, analysis: AnalysisRecord | str) -> bytes:
        """The DICOM SEG (one segment per class, on the source frames)."""
        return self._send(calls.dicom_object(analysis, "seg")).content

    def sr(self, analysis: AnalysisRecord | str) -> bytes:
        """The DICOM SR (TID 1500) with volumes and exam-level findings."""
        return self._send(calls.dicom_object(analysis, "sr")).content

    def overlay(self, analysis: AnalysisRecord | str, plane: int) -> bytes:
        """A PNG of analysed plane ``plane`` with the findings drawn."""
        return self._send(calls.overlay(analysis, plane)).content

    def viewer_link(self, analysis: AnalysisRecord | str) -> ViewerLink:
        """A link that opens the analysis in the gateway's viewer for a few minutes (the
        server's ``ICH_VIEWER_LINK_TTL_S``) without a key: hand it to the reader only."""
        return ViewerLink.model_validate((self._send(calls.viewer_link(analysis))).json())

    def health(self) -> Health:
        """Liveness and readiness (Triton and database), without raising for 503."""
        return calls.health(self._send(calls.LIVE), self._send(calls.READY, raising=False))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _analysis(self, response: httpx.Response) -> Analysis:
        return self._bind(response.json())

    def _bind(self, document: Any) -> Analysis:
        analysis = Analysis.model_validate(document)
        analysis._client = self
        return analysis

    def _send(self, call: Call, raising: bool = True) -> httpx.Response:
        """One call with the retry policy; raises the typed error of a non-2xx answer."""
        tries = Attempts(self.retries, call.target(self._http.base_url), raising)
        while True:
            content = call.upload.stream(call.progress) if call.upload else None
            try:
                response = self._http.send(call.request(self._http, content))
            except httpx.TransportError as error:
                delay = tries.after_error(error)
            else:
                if (delay := tries.after_response(response)) is None:
                    return response
            finally:
                if content is not None:  # a body abandoned mid-stream closes its file now
                    content.close()
            time.sleep(delay)

"""The asyncio client: the same calls as :class:`ich_client.Client`, awaited.

>>> import asyncio
>>> from ich_client import AsyncClient
>>> async def main() -> None:  # doctest: +SKIP
...     async with AsyncClient("http://127.0.0.1:8000", api_key="ich_...") as ich:
...         queued = await ich.submit("study.zip")
...         done = await queued.wait(timeout=300)
...         print(done.result.any_ich_flagged)
"""

from __future__ import annotations

import asyncio
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


class AsyncAnalysis(AnalysisRecord):
    """An analysis as last read, bound to the :class:`AsyncClient` that read it."""

    _client: AsyncClient = PrivateAttr()

    async def refresh(self) -> AsyncAnalysis:
        return await self._client.get(self.id)

    async def wait(
        self,
        timeout: float = DEFAULT_WAIT_S,
        *,
        outputs: bool = False,
        watch: Watcher | None = None,
    ) -> AsyncAnalysis:
        return await self._client.wait(self.id, timeout, outputs=outputs, watch=watch)

    async def seg(self) -> bytes:
        return await self._client.seg(self.id)

    async def sr(self) -> bytes:
        return await self._client.sr(self.id)

    async def overlay(self, plane: int) -> bytes:
        return await self._client.overlay(self.id, plane)

    async def viewer_link(self) -> ViewerLink:
        return await self._client.viewer_link(self.id)

    async def delete(self) -> None:
        await self._client.delete(self.id)


class AsyncClient:
    """Asynchronous twin of :class:`ich_client.Client` (same arguments, same errors)."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        retries: Retries | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retries = retries or Retries()
        self._http = httpx.AsyncClient(
            transport=transport, **client_options(url, api_key, token, timeout)
        )

    async def analyze(
        self,
        study: StudySource,
        *,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_S,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        progress: Progress | None = None,
    ) -> AsyncAnalysis:
        """See :meth:`ich_client.Client.analyze`."""
        call = calls.submission(
            await asyncio.to_thread(prepare, study),
            wait_s=timeout if wait else None,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
            progress=progress,
        )
        started = time.monotonic()
        analysis = self._analysis(await self._send(call))
        if wait and not analysis.terminal:
            analysis = await self.wait(analysis, timeout - (time.monotonic() - started))
        return analysis

    async def submit(
        self,
        study: StudySource,
        *,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        progress: Progress | None = None,
    ) -> AsyncAnalysis:
        """See :meth:`ich_client.Client.submit`."""
        return await self.analyze(
            study,
            wait=False,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
            progress=progress,
        )

    async def wait(
        self,
        analysis: AnalysisRecord | str,
        timeout: float = DEFAULT_WAIT_S,
        *,
        outputs: bool = False,
        watch: Watcher | None = None,
    ) -> AsyncAnalysis:
        """See :meth:`ich_client.Client.wait`."""
        poll = Poll(timeout, outputs, watch)
        while not poll.settled(current := await self.get(analysis)):
            await asyncio.sleep(poll.pause(current))
        return current

    async def get(self, analysis: AnalysisRecord | str) -> AsyncAnalysis:
        return self._analysis(await self._send(calls.read(analysis)))

    async def list(self, limit: int = 50) -> list[AsyncAnalysis]:
        answer = (await self._send(calls.listing(limit))).json()
        return [self._bind(item) for item in answer["analyses"]]

    async def worklist(self, hours: float = 24, limit: int = 100) -> list[WorklistItem]:
        """This client's studies of the last ``hours`` in reading order: positive first (by
        probability, then volume), then those still running, failed, negative."""
        answer = (await self._send(calls.worklist(hours, limit))).json()
        return [WorklistItem.model_validate(item) for item in answer["studies"]]

    async def delete(self, analysis: AnalysisRecord | str) -> None:
        await self._send(calls.delete(analysis))

    async def seg(self, analysis: AnalysisRecord | str) -> bytes:
        return (await self._send(calls.dicom_object(analysis, "seg"))).content

    async def sr(self, analysis: AnalysisRecord | str) -> bytes:
        return (await self._send(calls.dicom_object(analysis, "sr"))).content

    async def overlay(self, analysis: AnalysisRecord | str, plane: int) -> bytes:
        return (await self._send(calls.overlay(analysis, plane))).content

    async def viewer_link(self, analysis: AnalysisRecord | str) -> ViewerLink:
        """A link that opens the analysis in the gateway's viewer for a few minutes (the
        server's ``ICH_VIEWER_LINK_TTL_S``) without a key: hand it to the reader only."""
        return ViewerLink.model_validate((await self._send(calls.viewer_link(analysis))).json())

    async def health(self) -> Health:
        live = await self._send(calls.LIVE)
        return calls.health(live, await self._send(calls.READY, raising=False))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _analysis(self, response: httpx.Response) -> AsyncAnalysis:
        return self._bind(response.json())

    def _bind(self, document: Any) -> AsyncAnalysis:
        analysis = AsyncAnalysis.model_validate(document)
        analysis._client = self
        return analysis

    async def _send(self, call: Call, raising: bool = True) -> httpx.Response:
        """See ``Client._send``."""
        tries = Attempts(self.retries, call.target(self._http.base_url), raising)
        while True:
            content = call.upload.astream(call.progress) if call.upload else None
            try:
                response = await self._http.send(call.request(self._http, content))
            except httpx.TransportError as error:
                delay = tries.after_error(error)
            else:
                if (delay := tries.after_response(response)) is None:
                    return response
            finally:
                if content is not None:  # a body abandoned mid-stream closes its file now
                    await content.aclose()
            await asyncio.sleep(delay)

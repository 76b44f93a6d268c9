"""What each SDK call sends and how its answer is read, without I/O: the sync and async clients
share it and differ only in how they send."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from ich_client.errors import AnalysisFailedError, WaitTimeoutError
from ich_client.models import AnalysisRecord, Health, Outputs, Status
from ich_client.uploads import Progress, StudyUpload

FIRST_POLL_S, LAST_POLL_S = 0.2, 2.0


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    upload: StudyUpload | None = None
    progress: Progress | None = None
    read_timeout_s: float | None = None
    """Overrides the client's read timeout (a synchronous submission waits for the result)."""

    def target(self, base: httpx.URL) -> str:
        return f"{self.method} {str(base).rstrip('/')}{self.path}"

    def request(self, http: httpx.Client | httpx.AsyncClient, content: Any) -> httpx.Request:
        return http.build_request(
            self.method,
            self.path,
            params=self.params,
            headers=self.headers,
            content=content,
            timeout=self.timeout(http.timeout),
        )

    def timeout(self, base: httpx.Timeout) -> httpx.Timeout:
        if self.read_timeout_s is None:
            return base
        return httpx.Timeout(
            connect=base.connect, read=self.read_timeout_s, write=base.write, pool=base.pool
        )


def submission(
    upload: StudyUpload,
    *,
    wait_s: float | None,
    callback_url: str | None,
    idempotency_key: str | None,
    progress: Progress | None,
) -> Call:
    """POST /v1/analyses. ``wait_s`` None answers at once (202); a number lets the gateway
    answer with the result when it comes within its own wait limit."""
    headers = {
        "Content-Type": upload.content_type,
        "Content-Length": str(upload.length),
        "Idempotency-Key": idempotency_key or str(uuid.uuid4()),
    }
    if wait_s is None:
        headers["Prefer"] = "respond-async"
    params = {"callback_url": callback_url} if callback_url else {}
    return Call("POST", "/v1/analyses", params, headers, upload, progress, wait_s)


def analysis_id(analysis: AnalysisRecord | str) -> str:
    """The id as one path segment (an id with a slash cannot reach another endpoint)."""
    return quote(analysis if isinstance(analysis, str) else analysis.id, safe="")


def read(analysis: AnalysisRecord | str) -> Call:
    return Call("GET", f"/v1/analyses/{analysis_id(analysis)}")


def listing(limit: int) -> Call:
    return Call("GET", "/v1/analyses", {"limit": limit})


def worklist(hours: float, limit: int) -> Call:
    return Call("GET", "/v1/worklist", {"hours": hours, "limit": limit})


def delete(analysis: AnalysisRecord | str) -> Call:
    return Call("DELETE", f"/v1/analyses/{analysis_id(analysis)}")


def dicom_object(analysis: AnalysisRecord | str, kind: str) -> Call:
    return Call("GET", f"/v1/analyses/{analysis_id(analysis)}/{kind}")


def overlay(analysis: AnalysisRecord | str, plane: int) -> Call:
    return Call("GET", f"/v1/analyses/{analysis_id(analysis)}/overlays/{int(plane)}.png")


def viewer_link(analysis: AnalysisRecord | str) -> Call:
    return Call("POST", f"/v1/analyses/{analysis_id(analysis)}/viewer")


LIVE, READY = Call("GET", "/healthz"), Call("GET", "/readyz")


def health(live: httpx.Response, ready: httpx.Response) -> Health:
    """Both probes; the checks when the gateway itself answered (not a proxy's error page)."""
    try:
        checks = ready.json().get("checks", {})
    except (ValueError, AttributeError):
        checks = {}
    return Health(live=live.is_success, ready=ready.is_success, checks=checks)


def failure(record: AnalysisRecord) -> AnalysisFailedError:
    """The error of a failed analysis, carrying its problem document and the analysis."""
    document: dict[str, Any] = {
        "type": "about:blank",
        "title": "Analysis failed",
        "status": 500,
        "detail": "The analysis failed without a reason on record.",
    }
    if record.problem is not None:
        document = record.problem.model_dump()
    document |= {"instance": f"/v1/analyses/{record.id}", "analysis_id": record.id}
    return AnalysisFailedError(document, analysis=record)


Watcher = Callable[[AnalysisRecord], None]
"""Called with the analysis each time ``wait`` reads it (status, for progress displays)."""


class Poll:
    """Polling until an analysis settles: done (with its DICOM objects when ``outputs``) or
    failed (raised), with waits growing from 0.2 s to 2 s, within ``timeout_s``."""

    def __init__(self, timeout_s: float, outputs: bool, watch: Watcher | None = None) -> None:
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s, self.outputs, self.delay = timeout_s, outputs, FIRST_POLL_S
        self.watch = watch

    def settled(self, record: AnalysisRecord) -> bool:
        if self.watch is not None:
            self.watch(record)
        if record.status is Status.FAILED:
            raise failure(record)
        return record.status is Status.DONE and not (
            self.outputs and record.outputs is Outputs.PENDING
        )

    def pause(self, record: AnalysisRecord) -> float:
        """Seconds to sleep before the next look; raises WaitTimeoutError past the deadline."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeoutError(
                f"Analysis {record.id} is still {record.status.value} after {self.timeout_s:g} "
                "s; wait on it again or read it later with get().",
                record,
            )
        pause, self.delay = min(self.delay, remaining), min(self.delay * 1.5, LAST_POLL_S)
        return pause

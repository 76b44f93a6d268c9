"""Typed exceptions. Every error the gateway answers is RFC 7807 problem+json; it is raised as
the :class:`ProblemError` subclass for its status, carrying the document's fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from ich_client.models import AnalysisRecord


class ICHError(Exception):
    """Base of every error this SDK raises."""


class StudyInputError(ICHError, ValueError):
    """The study given to ``analyze``/``submit`` cannot be sent (missing, empty, unreadable)."""


class ConnectionFailedError(ICHError):
    """The gateway could not be reached, or the connection broke, after the retries."""


class WaitTimeoutError(ICHError, TimeoutError):
    """The analysis did not finish within the caller's timeout; it may still finish later."""

    def __init__(self, message: str, analysis: AnalysisRecord) -> None:
        super().__init__(message)
        self.analysis = analysis


class WebhookVerificationError(ICHError):
    """A webhook's signature is missing, malformed, stale or does not match the secret."""


class ProblemError(ICHError):
    """An error answered by the gateway (``application/problem+json``).

    Attributes mirror the document: ``type``, ``title``, ``status``, ``detail`` and, when
    present, ``instance`` and ``analysis_id``; ``code`` is the type's slug (``queue-full``),
    ``retry_after`` the server's Retry-After in seconds, ``analysis`` the failed analysis when
    the SDK read it.
    """

    def __init__(
        self,
        document: dict[str, Any],
        retry_after: float | None = None,
        analysis: AnalysisRecord | None = None,
    ) -> None:
        self.document = document
        self.type = str(document.get("type", "about:blank"))
        self.title = str(document.get("title", ""))
        self.status = int(document.get("status", 0))
        self.detail = str(document.get("detail", ""))
        self.instance: str | None = document.get("instance")
        self.analysis_id: str | None = document.get("analysis_id")
        self.retry_after = retry_after
        self.analysis = analysis
        super().__init__(f"{self.status} {self.code}: {self.detail or self.title}")

    @property
    def code(self) -> str:
        return self.type.rstrip("/").rsplit("/", 1)[-1]


class InvalidRequestError(ProblemError):
    """400, 413, 415: the request itself was refused (malformed, too large, wrong type)."""


class AuthenticationError(ProblemError):
    """401: no credentials, or an unknown or revoked key or token."""


class PermissionDeniedError(ProblemError):
    """403: the key or token lacks the scope the call needs."""


class NotFoundError(ProblemError):
    """404: no such analysis for this client (or it was deleted)."""


class ConflictError(ProblemError):
    """409: an Idempotency-Key reused with other files, or DICOM objects not ready yet."""


class AnalysisFailedError(ProblemError):
    """422 or 504: the study was received but could not be analysed (no axial CT series,
    unreadable pixels, timed out, ...); ``detail`` says what to send instead."""


class RateLimitError(ProblemError):
    """429: this client sent too many requests; retried automatically before it is raised."""


class ServiceUnavailableError(ProblemError):
    """503: the queue is full or the inference server is not ready; retried automatically."""


_BY_STATUS: dict[int, type[ProblemError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidRequestError,
    415: InvalidRequestError,
    422: AnalysisFailedError,
    429: RateLimitError,
    503: ServiceUnavailableError,
    504: AnalysisFailedError,
}


def problem_class(status: int) -> type[ProblemError]:
    return _BY_STATUS.get(status, ProblemError)


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def from_response(response: httpx.Response) -> ProblemError:
    """The typed error of a non-2xx answer (its problem document, or one made from the
    status when a proxy answered)."""
    try:
        document = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        document = None
    if not isinstance(document, dict) or "status" not in document:
        document = {
            "type": "about:blank",
            "title": response.reason_phrase,
            "status": response.status_code,
            "detail": response.text[:500] or response.reason_phrase,
        }
    # A problem naming an analysis is that analysis's failure, whatever its status.
    kind = AnalysisFailedError if "analysis_id" in document else problem_class(response.status_code)
    return kind(document, retry_after(response))

"""RFC 7807 problem+json: one stable ``type`` per failure, never a stack trace.

Errors raised anywhere (ingestion, Triton, limits, auth) carry a slug ``code``; this module owns
the mapping from code to HTTP status and renders the problem document.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from api.schemas import ProblemDetail
from ich.errors import IchError

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "/v1/problems/"
"""Problem types are relative URIs; ``GET /v1/problems/{code}`` describes each."""

STATUS: dict[str, int] = {
    "bad-request": 400,
    "unauthorized": 401,
    "unknown-key": 401,
    "invalid-link": 401,
    "forbidden": 403,
    "not-found": 404,
    "request-timeout": 408,
    "idempotency-conflict": 409,
    "outputs-not-ready": 409,
    "outputs-failed": 409,
    "input-limit": 413,
    "too-large": 413,
    "unsupported-media-type": 415,
    "no-dicom": 422,
    "unreadable-dicom": 422,
    "no-ct-series": 422,
    "no-axial-series": 422,
    "too-few-slices": 422,
    "no-eligible-series": 422,
    "ambiguous-study": 422,
    "series-geometry": 422,
    "series-too-long": 422,
    "pixel-data": 422,
    "unsupported-transfer-syntax": 422,
    "dicom-input": 422,
    "rate-limited": 429,
    "analysis-failed": 500,
    "queue-full": 503,
    "storage-full": 503,
    "database-unavailable": 503,
    "triton-unavailable": 503,
    "analysis-timeout": 504,
}
"""HTTP status of each problem type; anything else is a 500 ``analysis-failed``."""

RETRY_AFTER = {
    "rate-limited",
    "queue-full",
    "storage-full",
    "database-unavailable",
    "triton-unavailable",
}

DESCRIPTIONS: dict[str, str] = {
    "bad-request": "The request is malformed; the detail says which part.",
    "unauthorized": "No valid API key or bearer token was sent.",
    "unknown-key": "The API key is unknown or revoked.",
    "invalid-link": "The viewer link is forged, for another analysis, or expired; ask the API "
    "for a new one.",
    "forbidden": "The credentials lack the scope this operation needs.",
    "not-found": "No such analysis for this client (or it was deleted).",
    "request-timeout": "The upload stalled (sent nothing for a while); nothing was kept.",
    "idempotency-conflict": "The Idempotency-Key was used before with a different request.",
    "outputs-not-ready": "The analysis or its DICOM objects are not finished yet; retry.",
    "outputs-failed": "The DICOM objects and images of a done analysis could not be made.",
    "input-limit": "The study exceeds a configured limit (files, bytes, archive expansion).",
    "too-large": "The request body exceeds the upload limit.",
    "unsupported-media-type": "Send multipart/form-data, application/zip or application/dicom.",
    "no-dicom": "Nothing in the upload is a DICOM image.",
    "unreadable-dicom": "DICOM files are truncated or corrupt.",
    "no-ct-series": "The images are not CT.",
    "no-axial-series": "No CT series is axial.",
    "too-few-slices": "The series has fewer slices than the model's 5-slice input needs.",
    "no-eligible-series": "Every axial CT series was excluded for a stated reason.",
    "ambiguous-study": "Several studies hold eligible series; send one study per request.",
    "series-geometry": "The slices cannot be placed on one grid (gaps or mixed geometry).",
    "series-too-long": "The series covers more than a head.",
    "pixel-data": "Pixel data cannot be decoded.",
    "unsupported-transfer-syntax": "The transfer syntax has no decoder here.",
    "dicom-input": "The input cannot be analysed as a head CT series.",
    "rate-limited": "Too many requests from this client; wait for Retry-After seconds.",
    "analysis-failed": "The analysis failed on the server; the detail says why.",
    "queue-full": "The service is at capacity; retry after Retry-After seconds.",
    "storage-full": "The gateway's spool is short of disk space; nothing was kept; retry later.",
    "database-unavailable": "The job database is locked or unreachable; nothing was changed; "
    "retry after Retry-After seconds.",
    "triton-unavailable": "The inference server cannot be reached; retry later.",
    "analysis-timeout": "The inference server did not answer within the analysis time limit.",
}


class ProblemError(IchError):
    """An error the gateway answers with directly (auth, limits, routing)."""

    def __init__(
        self, code: str, detail: str, title: str | None = None, retry_after_s: int | None = None
    ) -> None:
        super().__init__(detail)
        self.code = code  # type: ignore[misc]
        self.title = title or code.replace("-", " ").capitalize()  # type: ignore[misc]
        self.retry_after_s = retry_after_s


def problem(code: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The problem document of a code (status from :data:`STATUS`)."""
    return {
        "type": TYPE_BASE + code,
        "title": title,
        "status": STATUS.get(code, 500),
        "detail": detail,
        **extra,
    }


def of_error(error: IchError, **extra: Any) -> dict[str, Any]:
    return problem(error.code, error.title, error.message, **extra)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for problem documents of these statuses."""
    return {s: {"model": ProblemDetail, "content": {PROBLEM_JSON: {}}} for s in statuses}


def response(document: dict[str, Any], retry_after_s: int) -> JSONResponse:
    code = document["type"].removeprefix(TYPE_BASE)
    headers = {"Retry-After": str(retry_after_s)} if code in RETRY_AFTER else {}
    return JSONResponse(
        document, status_code=document["status"], media_type=PROBLEM_JSON, headers=headers
    )

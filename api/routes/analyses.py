"""``/v1/analyses``: submit a study, read its status and result, its DICOM SEG/SR and overlays,
delete it."""

from __future__ import annotations

import shutil
import uuid
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from api.jobs import as_analysis
from api.models import Analysis, AnalysisList, Outputs, ProblemDetail, Status
from api.outputs import SEG_FILE, SR_FILE, overlay_path
from api.problems import PROBLEM_JSON, ProblemError, response
from api.state import Gateway, gateway
from api.uploads import receive

router = APIRouter(tags=["analyses"])
READ, WRITE = "analyses:read", "analyses:write"


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ProblemDetail, "content": {PROBLEM_JSON: {}}} for s in statuses}


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "One study: DICOM files as multipart/form-data parts (any field name; "
        "an optional `callback_url` text field), one zip of them, or one DICOM file.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "callback_url": {"type": "string", "format": "uri"},
                    },
                }
            },
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
            "application/dicom": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _callback(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ProblemError("bad-request", f"callback_url must be an http(s) URL, got {url!r}.")
    return url


def _location(analysis_id: str) -> str:
    return f"/v1/analyses/{analysis_id}"


@router.post(
    "/v1/analyses",
    response_model=Analysis,
    status_code=200,
    summary="Analyse a head CT study",
    description="Synchronous by default: answers 200 with the result when the analysis ends "
    "within the server's wait limit, else 202 with a Location to poll. `Prefer: "
    "respond-async` (or `?async=true`) answers 202 at once. A failed analysis answers its "
    "problem (e.g. 422 no-axial-series). `Idempotency-Key` makes a retried submission return "
    "the first one's analysis instead of analysing twice.",
    responses={
        202: {"model": Analysis, "description": "Accepted; poll the Location."},
        **_problems(400, 401, 403, 409, 413, 415, 422, 429, 503, 504),
    },
    openapi_extra=UPLOAD_BODY,
)
async def submit(
    request: Request,
    asynchronous: Annotated[bool, Query(alias="async")] = False,
    callback_url: Annotated[str | None, Query(description="Webhook for the result.")] = None,
    prefer: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    gw = gateway(request)
    client = gw.auth.client(request, WRITE)
    if not gw.inference.ready():
        raise ProblemError(
            "triton-unavailable",
            f"The inference server at {gw.settings.triton_url} is not ready; retry in "
            f"{gw.settings.retry_after_s} s. Nothing was accepted.",
            "Inference server unavailable",
        )
    gw.workers.admit()
    analysis_id = str(uuid.uuid4())
    spool = gw.workers.spool(analysis_id)
    _callback(callback_url)
    upload = await receive(request, spool, gw.settings)
    try:
        callback = _callback(callback_url or upload.fields.get("callback_url"))
    except ProblemError:
        shutil.rmtree(spool, ignore_errors=True)
        raise
    row, created = gw.store.create(
        client.id,
        "upload",
        Status.QUEUED,
        upload.digest,
        idempotency_key,
        callback,
        analysis_id=analysis_id,
    )
    if created:
        gw.workers.submit(row.id)
    else:
        shutil.rmtree(spool, ignore_errors=True)
    if asynchronous or "respond-async" in (prefer or "").lower():
        return _accepted(gw, row.id, {"Preference-Applied": "respond-async"})
    if not await gw.workers.wait(row.id, gw.settings.sync_timeout_s):
        return _accepted(gw, row.id, {})
    return _final(gw, row.id)


def _accepted(gw: Gateway, analysis_id: str, headers: dict[str, str]) -> Response:
    analysis = as_analysis(gw.store.get(analysis_id))  # type: ignore[arg-type]
    return JSONResponse(
        analysis.model_dump(mode="json"),
        status_code=202,
        headers={"Location": _location(analysis_id), "Retry-After": "1", **headers},
    )


def _final(gw: Gateway, analysis_id: str) -> Response:
    analysis = as_analysis(gw.store.get(analysis_id))  # type: ignore[arg-type]
    if analysis.status is Status.FAILED and analysis.problem is not None:
        document = analysis.problem.model_dump() | {
            "instance": _location(analysis_id),
            "analysis_id": analysis_id,
        }
        answer = response(document, gw.settings.retry_after_s)
        answer.headers["Location"] = _location(analysis_id)
        return answer
    return JSONResponse(
        analysis.model_dump(mode="json"), headers={"Location": _location(analysis_id)}
    )


def _owned(request: Request, analysis_id: str, scope: str = READ) -> tuple[Gateway, Any]:
    gw = gateway(request)
    client = gw.auth.client(request, scope)
    row = gw.store.get(analysis_id, client.id)
    if row is None:
        raise ProblemError(
            "not-found", f"No analysis {analysis_id} for this client.", "Analysis not found"
        )
    return gw, row


@router.get(
    "/v1/analyses",
    response_model=AnalysisList,
    summary="This client's analyses",
    responses=_problems(401, 403, 429),
)
async def listing(
    request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> AnalysisList:
    gw = gateway(request)
    client = gw.auth.client(request, READ)
    return AnalysisList(analyses=[as_analysis(r) for r in gw.store.listing(client.id, limit)])


@router.get(
    "/v1/analyses/{analysis_id}",
    response_model=Analysis,
    summary="Status and result of an analysis",
    responses=_problems(401, 403, 404, 429),
)
async def read(request: Request, analysis_id: str) -> Analysis:
    _, row = _owned(request, analysis_id)
    return as_analysis(row)


@router.delete(
    "/v1/analyses/{analysis_id}",
    status_code=204,
    summary="Delete an analysis: its uploaded DICOM, result and DICOM objects",
    responses=_problems(401, 403, 404, 429),
)
async def remove(request: Request, analysis_id: str) -> Response:
    gw, row = _owned(request, analysis_id, WRITE)
    gw.store.delete(row.id)
    shutil.rmtree(gw.workers.spool(row.id), ignore_errors=True)
    shutil.rmtree(gw.workers.results(row.id), ignore_errors=True)
    gw.store.audit(row.client_id, "delete", row.id)
    return Response(status_code=204)


def _output(request: Request, analysis_id: str) -> tuple[Gateway, Any]:
    gw, row = _owned(request, analysis_id)
    if row.outputs != Outputs.READY.value:
        state = "failed" if row.outputs == Outputs.FAILED.value else f"{row.status}/{row.outputs}"
        raise ProblemError(
            "outputs-not-ready",
            f"The DICOM objects of analysis {analysis_id} are not available ({state}); they "
            "follow a done analysis within seconds.",
            "Not ready",
        )
    return gw, row


DICOM_RESPONSE = {200: {"content": {"application/dicom": {}}}, **_problems(401, 404, 409)}


@router.get(
    "/v1/analyses/{analysis_id}/seg",
    response_class=FileResponse,
    summary="DICOM SEG of the hemorrhages (one segment per class; unverified)",
    responses=DICOM_RESPONSE,
)
async def seg(request: Request, analysis_id: str) -> FileResponse:
    gw, row = _output(request, analysis_id)
    return FileResponse(
        gw.workers.results(row.id) / SEG_FILE,
        media_type="application/dicom",
        filename=f"{row.id}-seg.dcm",
    )


@router.get(
    "/v1/analyses/{analysis_id}/sr",
    response_class=FileResponse,
    summary="DICOM SR (TID 1500) with the volumes (unverified)",
    responses=DICOM_RESPONSE,
)
async def sr(request: Request, analysis_id: str) -> FileResponse:
    gw, row = _output(request, analysis_id)
    return FileResponse(
        gw.workers.results(row.id) / SR_FILE,
        media_type="application/dicom",
        filename=f"{row.id}-sr.dcm",
    )


@router.get(
    "/v1/analyses/{analysis_id}/overlays/{plane}.png",
    response_class=FileResponse,
    summary="One analysed plane in a brain window with the findings drawn on it",
    responses={200: {"content": {"image/png": {}}}, **_problems(401, 404, 409)},
)
async def overlay(request: Request, analysis_id: str, plane: int) -> FileResponse:
    gw, row = _output(request, analysis_id)
    path = overlay_path(gw.workers.results(row.id), plane)
    if not path.is_file():
        planes = len(list(path.parent.glob("*.png")))
        raise ProblemError(
            "not-found",
            f"Plane {plane} does not exist; the analysed volume has planes 0 to {planes - 1}.",
            "No such plane",
        )
    return FileResponse(path, media_type="image/png")

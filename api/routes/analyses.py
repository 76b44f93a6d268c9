"""``/v1/analyses``: submit a study, read its status and result, its DICOM SEG/SR and overlays,
delete it."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from sqlalchemy import Row

from api.db import unavailable
from api.jobs import as_analysis, location
from api.outputs import SEG_FILE, SR_FILE, overlay_path
from api.problems import ProblemError, problem_responses, response
from api.schemas import Analysis, AnalysisList, Outputs, Status
from api.state import Gateway, gateway
from api.uploads import receive
from api.webhooks import check_callback

router = APIRouter(tags=["analyses"])
READ, WRITE = "analyses:read", "analyses:write"
READY_TIMEOUT_S = 5.0

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


async def ensure_ready(gw: Gateway) -> None:
    """Raises triton-unavailable (503) unless Triton answers ready within a few seconds."""
    try:
        ready = await asyncio.wait_for(asyncio.to_thread(gw.inference.ready), READY_TIMEOUT_S)
    except TimeoutError:
        ready = False
    if not ready:
        raise ProblemError(
            "triton-unavailable",
            f"The inference server at {gw.settings.triton_url} is not ready; retry in "
            f"{gw.settings.retry_after_s} s. Nothing was accepted.",
            "Inference server unavailable",
        )


async def _checked_callback(gw: Gateway, url: str | None) -> str | None:
    if url:
        await asyncio.to_thread(check_callback, url, gw.settings.webhook_allow_loopback)
    return url or None


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
        **problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503, 504),
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
    client = await asyncio.to_thread(gw.auth.client, request, WRITE)
    key = idempotency_key or ""
    retry = bool(key) and await asyncio.to_thread(gw.store.by_key, client.id, key) is not None
    if not retry:  # a retry adds no work: it is answered even when the queue is full
        await ensure_ready(gw)
    await _checked_callback(gw, callback_url)
    analysis_id = str(uuid.uuid4())
    spool = gw.workers.files.spool(analysis_id)
    created = False
    async with contextlib.nullcontext() if retry else gw.workers.place():
        upload = await receive(request, spool, gw.settings)
        try:
            callback = await _checked_callback(
                gw, callback_url or upload.fields.get("callback_url")
            )
            row, created = await asyncio.to_thread(
                gw.store.create,
                client.id,
                "upload",
                Status.QUEUED,
                upload.digest,
                idempotency_key,
                callback,
                analysis_id=analysis_id,
            )
        finally:
            if not created:
                shutil.rmtree(spool, ignore_errors=True)
    if created:
        gw.workers.submit(row.id)
    try:
        if asynchronous or "respond-async" in (prefer or "").lower():
            headers = {"Preference-Applied": "respond-async"}
            return await asyncio.to_thread(_answer, gw, row.id, headers)
        finished = await gw.workers.wait(row.id, gw.settings.sync_timeout_s)
        headers = {} if finished else {"Retry-After": "1"}
        return await asyncio.to_thread(_answer, gw, row.id, headers)
    except Exception as error:  # accepted all the same: say so, or a retry would analyse it twice
        if not unavailable(error):
            raise
        retry_after = str(gw.settings.retry_after_s)
        headers = {"Location": location(row.id), "Retry-After": retry_after}
        body = as_analysis(row).model_dump(mode="json")
        return JSONResponse(body, status_code=202, headers=headers)


def _answer(gw: Gateway, analysis_id: str, headers: dict[str, str]) -> Response:
    """The analysis as it stands: 200 when done, its problem when failed, else 202."""
    row = gw.store.get(analysis_id)
    if row is None:
        raise ProblemError("not-found", f"Analysis {analysis_id} was deleted.", "Deleted")
    analysis = as_analysis(row)
    headers = {"Location": location(analysis_id), **headers}
    if analysis.status is Status.FAILED and analysis.problem is not None:
        document = analysis.problem.model_dump() | {
            "instance": location(analysis_id),
            "analysis_id": analysis_id,
        }
        answer = response(document, gw.settings.retry_after_s)
        answer.headers.update(headers)
        return answer
    status = 200 if analysis.status is Status.DONE else 202
    if status == 202:
        headers.setdefault("Retry-After", "1")
    return JSONResponse(analysis.model_dump(mode="json"), status_code=status, headers=headers)


def owned(request: Request, analysis_id: str, scope: str = READ) -> tuple[Gateway, Row]:
    """The analysis if the caller's credentials hold ``scope`` and its client owns it."""
    gw = gateway(request)
    client = gw.auth.client(request, scope)
    row = gw.store.get(analysis_id, client.id)
    if row is None:
        raise ProblemError(
            "not-found", f"No analysis {analysis_id} for this client.", "Analysis not found"
        )
    gw.store.audit(client.id, f"read:{scope.split(':')[1]}", row.id, request.url.path)
    return gw, row


@router.get(
    "/v1/analyses",
    response_model=AnalysisList,
    summary="This client's analyses",
    responses=problem_responses(401, 403, 429),
)
def listing(request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> AnalysisList:
    gw = gateway(request)
    client = gw.auth.client(request, READ)
    return AnalysisList(analyses=[as_analysis(r) for r in gw.store.listing(client.id, limit)])


@router.get(
    "/v1/analyses/{analysis_id}",
    response_model=Analysis,
    summary="Status and result of an analysis",
    responses=problem_responses(401, 403, 404, 429),
)
def read(request: Request, analysis_id: str) -> Analysis:
    _, row = owned(request, analysis_id)
    return as_analysis(row)


@router.delete(
    "/v1/analyses/{analysis_id}",
    status_code=204,
    summary="Delete an analysis: its uploaded DICOM, result and DICOM objects",
    responses=problem_responses(401, 403, 404, 429),
)
async def remove(request: Request, analysis_id: str) -> Response:
    gw, row = await asyncio.to_thread(owned, request, analysis_id, WRITE)
    gw.assembler.forget(row.id)  # the assembler's timers live on the event loop
    await asyncio.to_thread(_delete, gw, row)
    return Response(status_code=204)


def _delete(gw: Gateway, row: Row) -> None:
    gw.store.delete(row.id)
    gw.workers.files.remove(row.id)
    gw.store.audit(row.client_id, "delete", row.id)


def _outputs(request: Request, analysis_id: str) -> Path:
    return ready_outputs(*owned(request, analysis_id))


def ready_outputs(gw: Gateway, row: Row) -> Path:
    """The folder of a finished analysis's DICOM objects, or why they are not there."""
    analysis_id = row.id
    if row.outputs == Outputs.FAILED.value:
        raise ProblemError(
            "outputs-failed",
            f"The DICOM objects and images of analysis {analysis_id} could not be made (the "
            "error is logged); its result stands. Submit the study again to retry them.",
            "Outputs failed",
        )
    if row.outputs != Outputs.READY.value:
        raise ProblemError(
            "outputs-not-ready",
            f"The DICOM objects of analysis {analysis_id} are not available yet "
            f"({row.status}/{row.outputs}); they follow a done analysis within seconds.",
            "Not ready",
        )
    return gw.workers.files.results(row.id)


DICOM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/dicom": {}}},
    **problem_responses(401, 404, 409),
}


DICOM_OBJECTS = {
    "seg": (SEG_FILE, "DICOM SEG of the hemorrhages (one segment per class; unverified)"),
    "sr": (SR_FILE, "DICOM SR (TID 1500) with the volumes (unverified)"),
}


def _dicom_route(kind: str, name: str) -> Any:
    def download(request: Request, analysis_id: str) -> FileResponse:
        path = _outputs(request, analysis_id) / name
        return FileResponse(
            path, media_type="application/dicom", filename=f"{analysis_id}-{kind}.dcm"
        )

    download.__name__ = kind
    return download


for _kind, (_name, _summary) in DICOM_OBJECTS.items():
    router.add_api_route(
        f"/v1/analyses/{{analysis_id}}/{_kind}",
        _dicom_route(_kind, _name),
        methods=["GET"],
        response_class=FileResponse,
        summary=_summary,
        responses=DICOM_RESPONSE,
    )


@router.get(
    "/v1/analyses/{analysis_id}/overlays/{plane}.png",
    response_class=FileResponse,
    summary="One analysed plane in a brain window with the findings drawn on it",
    responses={200: {"content": {"image/png": {}}}, **problem_responses(401, 404, 409)},
)
def overlay(request: Request, analysis_id: str, plane: int) -> FileResponse:
    path = overlay_path(_outputs(request, analysis_id), plane)
    if not path.is_file():
        planes = len(list(path.parent.glob("*.png")))
        raise ProblemError(
            "not-found",
            f"Plane {plane} does not exist; the analysed volume has planes 0 to {planes - 1}.",
            "No such plane",
        )
    return FileResponse(path, media_type="image/png")

"""DICOMweb STOW-RS: ``POST /dicomweb/studies`` with multipart/related application/dicom parts.

Answers the PS3.18 store response in DICOM JSON: the stored instances (each with the URL of the
analysis it joined as RetrieveURL) and the refused ones with a failure reason. 200 when all
were stored, 202 when some were refused, 409 when none was stored.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Sequence

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.problems import problem_responses
from api.routes.analyses import WRITE
from api.state import gateway
from api.stow import Refused, Stored
from api.uploads import receive

router = APIRouter(tags=["dicomweb"])
DICOM_JSON = "application/dicom+json"


def _ui(value: str) -> dict[str, object]:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def _url(value: str) -> dict[str, object]:
    return {"vr": "UR", "Value": [value]}


def _sequence(
    outcomes: Sequence[Stored | Refused], extra: list[dict[str, object]]
) -> dict[str, object]:
    """A store-response sequence: each instance's SOP class and instance UIDs plus ``extra``."""
    items = [
        {"00081150": _ui(o.sop_class_uid), "00081155": _ui(o.sop_instance_uid), **more}
        for o, more in zip(outcomes, extra, strict=True)
    ]
    return {"vr": "SQ", "Value": items}


@router.post(
    "/dicomweb/studies",
    summary="Store instances (STOW-RS); each study is analysed once complete",
    responses={
        200: {"content": {DICOM_JSON: {}}},
        202: {"content": {DICOM_JSON: {}}},
        409: {"content": {DICOM_JSON: {}}},
        **problem_responses(401, 403, 413, 415, 429, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                'multipart/related; type="application/dicom"': {
                    "schema": {"type": "string", "format": "binary"}
                }
            },
        }
    },
)
async def store_instances(request: Request) -> JSONResponse:
    gw = gateway(request)
    client = await asyncio.to_thread(gw.auth.client, request, WRITE)
    staging = gw.settings.spool_dir / f"stow-{uuid.uuid4()}"
    gw.assembler.begin(client.id)
    try:
        upload = await receive(request, staging, gw.settings, stow=True)
        outcomes = await gw.assembler.add(client.id, upload.files)
    finally:
        gw.assembler.end(client.id)
        shutil.rmtree(staging, ignore_errors=True)
    stored = [o for o in outcomes if isinstance(o, Stored)]
    refused = [o for o in outcomes if isinstance(o, Refused)]
    body: dict[str, object] = {}
    if stored:
        body["00081199"] = _sequence(
            stored, [{"00081190": _url(f"/v1/analyses/{o.analysis_id}")} for o in stored]
        )
    if refused:
        body["00081198"] = _sequence(
            refused, [{"00081197": {"vr": "US", "Value": [o.reason]}} for o in refused]
        )
    status = 200 if not refused else 202 if stored else 409
    headers = {}
    analyses = sorted({o.analysis_id for o in stored})
    if len(analyses) == 1:
        headers["Location"] = f"/v1/analyses/{analyses[0]}"
    return JSONResponse(body, status_code=status, media_type=DICOM_JSON, headers=headers)

"""The viewer: a signed link from the API, the page it opens, and the planes the page loads.

``POST /v1/analyses/{id}/viewer`` answers a link valid for ``ICH_VIEWER_LINK_TTL_S``. Opening it
moves the token into a cookie scoped to that analysis's viewer path and redirects to a clean URL,
so the token stays out of history and Referer headers. The page and its script are served from
here (no CDN); it loads the planes one request each, nearest the shown plane first, and windows
and colours them in the browser, so presets and toggles need no round trip.
"""

from __future__ import annotations

import gzip
import html
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy import Row

from api.jobs import as_analysis
from api.keys import client_active
from api.outputs import HU_RANGE, PLANES, plane_path
from api.problems import ProblemError, of_error, problem_responses
from api.routes.analyses import owned, ready_outputs
from api.schemas import Analysis, ViewerLink
from api.state import Gateway, gateway
from ich.overlays import BRAIN_WINDOW, COLOURS
from ich.schema import HemorrhageClass

router = APIRouter(tags=["viewer"])
COOKIE = "ich_viewer"
ASSETS = Path(__file__).resolve().parents[1] / "viewer"
ASSET_TYPES = {"viewer.js": "text/javascript; charset=utf-8", "viewer.css": "text/css"}
WINDOWS = {"brain": BRAIN_WINDOW, "subdural": (75.0, 215.0), "bone": (600.0, 2800.0)}
"""Window presets (level, width) in HU, as reading rooms use them."""
NO_STORE = {"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer"}


def _page_headers(gw: Gateway) -> dict[str, str]:
    ancestors = " ".join(gw.settings.viewer_frame_ancestors) or "'none'"
    policy = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
    )
    return NO_STORE | {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff"}


def _viewable(request: Request, analysis_id: str) -> tuple[Gateway, Row]:
    """The analysis for an API caller (key or token, as everywhere) or a viewer-link cookie."""
    gw = gateway(request)
    token = request.cookies.get(COOKIE)
    if token is None or request.headers.get("authorization") or request.headers.get("x-api-key"):
        return owned(request, analysis_id)
    grant = gw.links.check(token, analysis_id)
    row = gw.store.get(analysis_id, grant.client_id)
    if row is None or not client_active(gw.engine, grant.client_id):
        raise ProblemError(
            "not-found",
            f"Analysis {analysis_id} was deleted, or the client that linked it was revoked.",
            "Analysis not found",
        )
    request.state.client_id = grant.client_id
    return gw, row


@router.post(
    "/v1/analyses/{analysis_id}/viewer",
    response_model=ViewerLink,
    status_code=201,
    summary="A short-lived link to the analysis's viewer page",
    description="The link opens the viewer in a browser without an API key until `expires_at` "
    "(`ICH_VIEWER_LINK_TTL_S`). Revoking the key's client or deleting the analysis ends it "
    "early. Anyone holding the link can see the images: send it only to the reader.",
    responses=problem_responses(401, 403, 404, 429),
)
def issue_link(request: Request, analysis_id: str) -> ViewerLink:
    gw, row = owned(request, analysis_id)
    token, expires = gw.links.issue(row.id, row.client_id)
    url = request.url_for("viewer_page", analysis_id=row.id).include_query_params(token=token)
    gw.store.audit(row.client_id, "viewer-link", row.id)
    return ViewerLink(url=str(url), expires_at=datetime.fromtimestamp(expires, UTC))


@router.get(
    "/viewer/assets/{name}",
    summary="The viewer's script and style sheet",
    responses={
        200: {"content": {"text/javascript": {}, "text/css": {}}},
        **problem_responses(404),
    },
)
async def asset(name: str) -> FileResponse:
    if name not in ASSET_TYPES:
        raise ProblemError("not-found", f"The viewer has no asset {name!r}.", "No such asset")
    return FileResponse(
        ASSETS / name, media_type=ASSET_TYPES[name], headers={"Cache-Control": "no-cache"}
    )


@router.get(
    "/viewer/{analysis_id}",
    response_class=HTMLResponse,
    summary="The viewer page of an analysis (open the link from POST .../viewer)",
    responses={
        303: {"description": "The link's token moved into a cookie."},
        **problem_responses(401, 403, 404, 429),
    },
)
def viewer_page(
    request: Request,
    analysis_id: str,
    token: str | None = Query(None, description="The signed token of a viewer link."),
) -> Response:
    gw = gateway(request)
    try:
        if token is not None:
            return _enter(request, gw, analysis_id, token)
        gw, row = _viewable(request, analysis_id)
    except ProblemError as error:
        if "text/html" not in request.headers.get("accept", ""):
            raise
        document = of_error(error)
        return HTMLResponse(
            _render("error.html", title=document["title"], detail=document["detail"]),
            status_code=document["status"],
            headers=_page_headers(gw),
        )
    gw.store.audit(row.client_id, "read:viewer", row.id, request.url.path)
    page = _render("index.html", title=f"ICH analysis {row.id}", data=_page_data(gw, row))
    return HTMLResponse(page, headers=_page_headers(gw))


def _enter(request: Request, gw: Gateway, analysis_id: str, token: str) -> Response:
    """Checks the link, keeps its token in a cookie for this viewer path, and redirects."""
    grant = gw.links.check(token, analysis_id)
    if not client_active(gw.engine, grant.client_id):
        raise ProblemError(
            "invalid-link", "The client that issued this link was revoked.", "Link revoked"
        )
    path = request.url.path
    answer = RedirectResponse(path, status_code=303, headers=NO_STORE)
    framed = bool(gw.settings.viewer_frame_ancestors)  # an EHR frame is another site
    answer.set_cookie(
        COOKIE,
        token,
        max_age=max(1, grant.expires - int(time.time())),
        path=path,
        httponly=True,
        secure=framed or request.url.scheme == "https",
        samesite="none" if framed else "lax",
    )
    return answer


def _page_data(gw: Gateway, row: Row) -> str:
    """What the page needs, as JSON safe inside a script element: the analysis as the API
    returns it (masks left out: the planes carry them) and the display settings."""
    analysis: Analysis = as_analysis(row)
    document: dict[str, Any] = analysis.model_dump(mode="json")
    if document["result"] is not None:
        document["result"]["label_volume"] = None
        for hemorrhage in document["result"]["hemorrhages"]:
            hemorrhage.pop("masks", None)
    data = {
        "analysis": document,
        "planes": f"{row.id}/{PLANES}/",
        "hu_range": HU_RANGE,
        "windows": WINDOWS,
        "classes": [
            {"name": c.value, "label": c.label, "colour": [round(255 * v) for v in COLOURS[c]]}
            for c in HemorrhageClass
        ],
        "retry_after_s": gw.settings.retry_after_s,
    }
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")


def _render(template: str, **values: str) -> str:
    escaped = {k: v if k == "data" else html.escape(v) for k, v in values.items()}
    return Template((ASSETS / template).read_text()).substitute(escaped)


@router.get(
    "/viewer/{analysis_id}/planes/{plane}",
    summary="One analysed plane: int16 HU then uint8 labels, row-major",
    description="rows x columns little-endian int16 HU (clipped to -1024..3071), then rows x "
    "columns uint8 labels (0 none, 1 IPH, 2 EDH/SDH, 3 SAH), on the analysed grid (radiological "
    "orientation, tilt corrected, `result.shape`). Sent gzip-encoded when accepted. Read with "
    "the viewer's cookie or an API key.",
    responses={
        200: {"content": {"application/octet-stream": {}}},
        **problem_responses(401, 403, 404, 409, 429),
    },
)
def plane(request: Request, analysis_id: str, plane: int) -> Response:
    gw, row = _viewable(request, analysis_id)
    path = plane_path(ready_outputs(gw, row), plane)
    if not path.is_file():
        planes = len(list(path.parent.glob("*.bin.gz")))
        detail = (
            f"Plane {plane} does not exist; the analysed volume has planes 0 to {planes - 1}."
            if planes
            else f"Analysis {analysis_id} was made before the viewer kept its planes; submit "
            "the study again to view it."
        )
        raise ProblemError("not-found", detail, "No such plane")
    if _accepts_gzip(request.headers.get("accept-encoding", "")):
        headers = NO_STORE | {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        return FileResponse(path, media_type="application/octet-stream", headers=headers)
    return Response(
        gzip.decompress(path.read_bytes()),
        media_type="application/octet-stream",
        headers=NO_STORE | {"Vary": "Accept-Encoding"},
    )


def _accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (by name or ``*``, with q above 0)."""
    allowed: dict[str, bool] = {}
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        quality = params.strip().removeprefix("q=")
        try:
            allowed[name.strip().lower()] = float(quality or 1) > 0
        except ValueError:
            allowed[name.strip().lower()] = False
    return allowed.get("gzip", allowed.get("*", False))

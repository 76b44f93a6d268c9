"""Liveness, readiness, Prometheus metrics and the problem-type catalogue."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.db import unavailable
from api.problems import DESCRIPTIONS, STATUS, ProblemError, problem_responses
from api.state import gateway

router = APIRouter(tags=["service"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: Triton's pipeline is loaded and the database answers",
    responses={503: {"description": "Not ready; the body says which part."}},
)
def readyz(request: Request) -> Response:
    gw = gateway(request)
    checks = {"triton": gw.inference.ready(), "database": gw.store.ping()}
    return JSONResponse(
        {"status": "ready" if all(checks.values()) else "not ready", "checks": checks},
        status_code=200 if all(checks.values()) else 503,
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    gw = gateway(request)
    try:
        gw.metrics.queue_depth.set(gw.store.active())
    except Exception as error:  # the other metrics still answer while the database is away
        if not unavailable(error):
            raise
    return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/problems/{code}",
    summary="What a problem type means",
    responses=problem_responses(404),
)
async def problem_type(code: str) -> dict[str, object]:
    if code not in DESCRIPTIONS:
        raise ProblemError("not-found", f"No problem type {code!r}.", "Unknown problem type")
    return {"type": code, "status": STATUS[code], "description": DESCRIPTIONS[code]}

"""The gateway application: ``create_app(settings)``, served by uvicorn (``ich serve``).

Torch never loads here: pixels are Triton's job. The app owns the job store, the worker pool,
authentication and the mapping of every error to problem+json.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from api import __version__
from api.auth import Authenticator
from api.db import UNAVAILABLE, connect, unavailable
from api.inference import Inference
from api.jobs import JobStore
from api.keys import client_named
from api.links import Links, signing_key
from api.logs import request_id
from api.metrics import Metrics
from api.problems import PROBLEM_JSON, of_error, problem, response
from api.puller import Puller
from api.receiver import Receiver
from api.replicas import Replica
from api.routes import analyses, dicomweb, service, viewer, worklist
from api.settings import Settings
from api.state import Gateway
from api.stow import Assembler
from api.worker import Workers
from ich.errors import IchError

log = logging.getLogger("api.access")
_SAFE_ID = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


DESCRIPTION = """\
Detection and volumetry of acute intracranial hemorrhage (IPH, EDH/SDH, SAH) on non-contrast
head CT. Send a study (DICOM files, a zip, or DICOMweb STOW-RS); get back per-class flags and
probabilities, detections with boxes, 3D hemorrhages with volumes in mL, run-length masks, and
DICOM SEG / SR objects.

**An unverified triage aid, not a diagnosis.** Authenticate with an API key
(`X-API-Key: ich_...`, created with `ich keys create`) or, where enabled, an OAuth2 bearer JWT.
Errors are RFC 7807 `application/problem+json`; each `type` is described at `/v1/problems/{code}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.spool_dir.mkdir(parents=True, exist_ok=True)
        settings.results_dir.mkdir(parents=True, exist_ok=True)
        engine = connect(settings.url)
        store = JobStore(engine, settings.replica_id)
        metrics = Metrics()
        inference = Inference(settings)
        workers = Workers(settings, store, inference, metrics)
        assembler = Assembler(settings, store, workers)
        app.state.gateway = Gateway(
            settings,
            engine,
            store,
            inference,
            metrics,
            Authenticator(settings, engine),
            workers,
            assembler,
            Links(signing_key(settings), settings.viewer_link_ttl_s),
        )
        received = Assembler(settings, store, workers, "dimse", settings.dicom_quiet_s)
        replica = Replica(settings, store, workers, {"stow": assembler, "dimse": received})
        receiver = puller = None
        if settings.dicom_port is not None or settings.dicomweb_url:
            owner = client_named(engine, settings.dicom_client)
            if settings.dicom_port is not None:
                receiver = Receiver(settings, received, owner, asyncio.get_running_loop())
            if settings.dicomweb_url:
                puller = Puller(settings, store, workers, owner)
        await workers.start()
        await replica.start()
        if receiver is not None:
            receiver.start()
        if puller is not None:
            puller.start()
        try:
            yield
        finally:
            if receiver is not None:  # its handlers may wait on this loop meanwhile
                await asyncio.to_thread(receiver.stop)
            if puller is not None:
                await puller.stop()
            await replica.stop()
            for each in (assembler, received):
                await each.stop()
            await workers.stop()
            replica.retire()
            engine.dispose()

    app = FastAPI(
        title="ICH triage gateway",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "analyses", "description": "Submit studies and read results."},
            {"name": "dicomweb", "description": "DICOMweb STOW-RS."},
            {"name": "viewer", "description": "The browser viewer and its signed links."},
            {"name": "service", "description": "Health, readiness, metrics, problem types."},
        ],
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["*"],
            expose_headers=["Location", "Retry-After", "X-Request-ID"],
        )
    app.include_router(analyses.router)
    app.include_router(worklist.router)
    app.include_router(viewer.router)
    app.include_router(dicomweb.router)
    app.include_router(service.router)
    _handlers(app, settings)
    _middleware(app)
    _document_problems(app)
    return app


def _document_problems(app: FastAPI) -> None:
    """The schema as the gateway answers: an invalid parameter is a 400 problem (see
    ``_handlers``), not FastAPI's default 422 validation list, and every authenticated
    operation may answer the 503 database-unavailable problem."""

    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            for path in document["paths"].values():
                for operation in path.values():
                    _problem_answers(operation["responses"])
            for name in ("HTTPValidationError", "ValidationError"):
                document["components"]["schemas"].pop(name, None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = schema  # type: ignore[method-assign]


def _problem_answers(responses: dict[str, Any]) -> None:
    problem_doc = {
        "description": "A problem (RFC 7807).",
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}},
    }
    default = responses.get("422", {}).get("content", {}).get("application/json", {})
    if default.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
        del responses["422"]
        responses.setdefault("400", problem_doc)
    if "401" in responses:  # authenticated: the client's key is looked up in the database
        responses.setdefault("503", problem_doc)


def _handlers(app: FastAPI, settings: Settings) -> None:
    retry = settings.retry_after_s

    @app.exception_handler(IchError)
    async def ich_error(_: Request, error: IchError) -> Response:
        return response(of_error(error), getattr(error, "retry_after_s", None) or retry)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> Response:
        where = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5]
        )
        return response(problem("bad-request", "Invalid request", where), retry)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        code = "not-found" if error.status_code == 404 else "bad-request"
        document = problem(
            code,
            str(error.detail),
            f"{request.method} {request.url.path}: {error.detail}",
            status=error.status_code,
        )
        return response(document, retry)

    async def database(request: Request, error: Exception) -> Response:
        if not unavailable(error):
            return await unexpected(request, error)
        log.warning("database unavailable: %s", type(error).__name__)
        detail = (
            f"The job database is locked or unreachable; nothing was changed. Retry in {retry} s."
        )
        return response(problem("database-unavailable", "Database unavailable", detail), retry)

    for kind in UNAVAILABLE:
        app.add_exception_handler(kind, database)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> Response:
        log.error("unhandled %s", type(error).__name__, exc_info=error)
        return response(
            problem(
                "analysis-failed",
                "Internal error",
                "The request failed on the server; the error is logged with its request id.",
            ),
            retry,
        )


def _middleware(app: FastAPI) -> None:
    @app.middleware("http")
    async def observe(request: Request, call_next):  # type: ignore[no-untyped-def]
        given = request.headers.get("x-request-id", "")
        rid = given if 0 < len(given) <= 64 and set(given) <= _SAFE_ID else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        try:
            answer = await call_next(request)
            status = answer.status_code
            answer.headers["X-Request-ID"] = rid
            return answer
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(request.scope.get("route"), "path", "unmatched")
            state = getattr(request.app.state, "gateway", None)
            if state is not None:
                state.metrics.requests.labels(request.method, route, str(status)).inc()
                state.metrics.latency.labels(request.method, route).observe(elapsed)
            log.info(
                "%s %s %d",
                request.method,
                route,
                status,
                extra={
                    "method": request.method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                    "client": getattr(request.state, "client_id", None),
                },
            )
            request_id.reset(token)

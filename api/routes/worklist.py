"""``/v1/worklist``: this client's recent studies in reading order, positives first."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import Row

from api.jobs import as_analysis, now
from api.problems import problem_responses
from api.routes.analyses import READ
from api.schemas import Status, Worklist, WorklistItem
from api.state import gateway

router = APIRouter(tags=["analyses"])
WINDOW_LIMIT = 10_000
"""Most studies of the window ordered at once (a month of a large emergency department)."""
GROUPS = {"positive": 0, "pending": 1, "failed": 2, "negative": 3}
"""Reading order: suspected bleeds, then studies still running (unknown), then those that could
not be analysed (someone must look), then negatives."""


def item(row: Row) -> WorklistItem:
    """The worklist entry of an analysis: its group, and its findings when done."""
    analysis = as_analysis(row)
    result = analysis.result
    if result is not None:
        group = "positive" if result.any_ich_flagged else "negative"
    else:
        group = "failed" if analysis.status is Status.FAILED else "pending"
    return WorklistItem(
        id=analysis.id,
        group=group,
        status=analysis.status,
        source=analysis.source,
        created=analysis.created,
        finished=analysis.finished,
        study_uid=result.study_uid if result else None,
        series_uid=result.series_uid if result else None,
        any_ich_flagged=result.any_ich_flagged if result else None,
        any_ich_probability=result.any_ich_probability if result else None,
        total_volume_ml=sum(c.total_volume_ml for c in result.classes) if result else None,
        classes=result.classes if result else [],
        problem=analysis.problem.title if analysis.problem else None,
        link=analysis.links.get("self", ""),
    )


def priority(entry: WorklistItem) -> tuple[int, float, float, float]:
    """Sort key: group, then higher probability, larger volume, newer first."""
    return (
        GROUPS[entry.group],
        -(entry.any_ich_probability or 0.0),
        -(entry.total_volume_ml or 0.0),
        -entry.created.timestamp(),
    )


@router.get(
    "/v1/worklist",
    response_model=Worklist,
    summary="Recent studies in reading order: positive first, by probability and volume",
    responses=problem_responses(401, 403, 429),
)
def worklist(
    request: Request,
    hours: Annotated[float, Query(gt=0, le=24 * 31, description="How far back.")] = 24,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Worklist:
    gw = gateway(request)
    client = gw.auth.client(request, READ)
    since = now() - timedelta(hours=hours)
    rows = gw.store.listing(client.id, WINDOW_LIMIT, since)  # the whole window, then ordered
    return Worklist(studies=sorted((item(r) for r in rows), key=priority)[:limit])

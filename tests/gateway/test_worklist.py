"""The worklist's reading order over a day of studies: positives first (by probability, then
volume), then running, failed and negative ones; the whole window is ordered before the limit."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient

from api.jobs import now
from api.keys import create_key
from api.schemas import EXAMPLE_ANALYSIS, Status


def _result(probability: float, volume: float) -> str:
    result = json.loads(json.dumps(EXAMPLE_ANALYSIS["result"]))
    result["any_ich_probability"], result["any_ich_flagged"] = probability, probability >= 0.5
    for finding in result["classes"]:
        finding["total_volume_ml"] = volume if finding["hemorrhage_class"] == "IPH" else 0.0
    return json.dumps(result)


def test_the_whole_window_is_ordered_before_the_limit(
    app_client: Callable[..., TestClient],
) -> None:
    client = app_client()
    gw = client.app.state.gateway  # type: ignore[attr-defined]
    issued = create_key(gw.engine, "reader")
    made = {}
    problem = {"type": "/v1/problems/x", "title": "Too few slices", "status": 422, "detail": "d"}
    for name, status, result, hours_ago in (
        ("old positive", Status.DONE, _result(0.9, 3.0), 20),
        ("big positive", Status.DONE, _result(0.9, 30.0), 1),
        ("likely positive", Status.DONE, _result(0.99, 1.0), 2),
        ("negative", Status.DONE, _result(0.1, 0.0), 0.5),
        ("running", Status.RUNNING, None, 0.2),
        ("failed", Status.FAILED, None, 0.1),
        ("last week", Status.DONE, _result(0.99, 50.0), 24 * 7),
    ):
        row, _ = gw.store.create(issued.client.id, "dimse", Status.QUEUED)
        problem = {
            "type": "/v1/problems/x",
            "title": "Too few slices",
            "status": 422,
            "detail": "d",
        }
        gw.store.update(
            row.id,
            status=status.value,
            result=result,
            created=now() - timedelta(hours=hours_ago),
            problem=problem if status is Status.FAILED else None,
        )
        made[row.id] = name
    for _ in range(60):  # newer negatives that a newest-first limit would keep instead
        row, _ = gw.store.create(issued.client.id, "dimse", Status.QUEUED)
        gw.store.update(row.id, status=Status.DONE.value, result=_result(0.05, 0.0))
    answer = client.get(
        "/v1/worklist", params={"limit": 6}, headers={"X-API-Key": issued.key}
    ).json()
    names = [made.get(s["id"], "newer negative") for s in answer["studies"]]
    assert names == [
        "likely positive",
        "big positive",
        "old positive",
        "running",
        "failed",
        "negative",
    ]
    assert answer["studies"][4]["problem"] == "Too few slices"

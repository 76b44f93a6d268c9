"""The retry policy's decisions on answers as the gateway (or a proxy) gives them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from ich_client import Retries

PROBLEM = {"content-type": "application/problem+json"}


def _answer(status: int, body: dict | None = None, **headers: str) -> httpx.Response:
    content = json.dumps(body or {"type": "/v1/problems/x", "status": status}).encode()
    return httpx.Response(status, content=content, headers={**PROBLEM, **headers})


def test_retry_after_is_waited_exactly_and_not_beyond_the_maximum() -> None:
    retries = Retries(attempts=4, max_wait_s=60)
    assert retries.after_response(1, _answer(503, **{"retry-after": "5"})) == 5.0
    assert retries.after_response(1, _answer(429, **{"retry-after": "61"})) is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= retries.after_response(1, _answer(429, **{"retry-after": later})) <= 30
    assert retries.after_response(4, _answer(503, **{"retry-after": "1"})) is None  # last try


def test_a_failed_analysis_or_a_client_error_is_not_retried() -> None:
    retries = Retries()
    failed = {"type": "/v1/problems/triton-unavailable", "status": 503, "analysis_id": "a1"}
    assert retries.after_response(1, _answer(503, failed, **{"retry-after": "5"})) is None
    assert retries.after_response(1, _answer(504, {"status": 504, "analysis_id": "a1"})) is None
    for status in (400, 401, 404, 409, 422):
        assert retries.after_response(1, _answer(status)) is None


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_other_transient_failures_back_off_with_jitter(attempt: int) -> None:
    retries = Retries(attempts=5, backoff_s=0.5)
    full = 0.5 * 2 ** (attempt - 1)
    proxy = httpx.Response(502, text="<html>bad gateway</html>")
    assert full / 2 <= retries.after_response(attempt, proxy) <= full
    assert full / 2 <= retries.after_error(attempt) <= full
    assert retries.after_error(5) is None

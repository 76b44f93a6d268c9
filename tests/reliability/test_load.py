"""Load against 127.0.0.1: rising concurrency of synchronous analyses (throughput, latency
percentiles, error rate), a memory soak (the full run: 1,000 analyses), and backpressure: a
full queue and a spent rate limit answer 503/429 with Retry-After at once, never a timeout."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from reliability_support import (  # type: ignore[import-not-found]
    DRILL_ENV,
    PROFILE,
    multipart,
    record,
    settle,
    tiny_study,
)

from api.process import GatewayProcess, start_gateway, status_mb
from ich.serving.server import TritonServer

BACKPRESSURE = (429, 503)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _drive(
    gateway: GatewayProcess, concurrency: int, studies: list[tuple[str, list[bytes]]]
) -> dict[str, Any]:
    """Each of ``concurrency`` clients posts studies synchronously (waiting for the result),
    honouring Retry-After when pushed back; latency counts from first try to answer."""
    latencies: list[float] = []
    outcome = {"ok": 0, "errors": 0, "pushed_back": 0, "wrong_study": 0}
    headers = {"X-API-Key": gateway.key}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=300) as client:

        async def one_client() -> None:
            while studies:
                study_uid, files = studies.pop()
                started = time.perf_counter()
                while True:
                    answer = await client.post("/v1/analyses", files=multipart(files))
                    if answer.status_code not in BACKPRESSURE:
                        break
                    outcome["pushed_back"] += 1
                    await asyncio.sleep(float(answer.headers["retry-after"]))
                latencies.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    outcome["errors"] += 1
                elif answer.json()["result"]["study_uid"] != study_uid:
                    outcome["wrong_study"] += 1
                else:
                    outcome["ok"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    total = len(latencies)
    return {
        "concurrency": concurrency,
        "analyses": total,
        "per_s": round(total / elapsed, 2),
        "p50_s": round(statistics.median(latencies), 3),
        "p95_s": round(_percentile(latencies, 0.95), 3),
        "p99_s": round(_percentile(latencies, 0.99), 3),
        "error_rate": round(outcome["errors"] / total, 4),
        **outcome,
    }


@pytest.mark.timeout(900)
def test_throughput_and_latency_at_rising_concurrency(drilled: GatewayProcess) -> None:
    levels = []
    for concurrency in PROFILE.load_levels:
        studies = [tiny_study() for _ in range(PROFILE.requests_per_level)]
        level = asyncio.run(_drive(drilled, concurrency, studies))
        assert level["errors"] == 0 and level["wrong_study"] == 0, level
        levels.append(level)
    record("load", levels=levels)


@pytest.mark.timeout(900)
def test_memory_does_not_grow_over_a_soak(drilled: GatewayProcess, triton: TritonServer) -> None:
    assert triton.process is not None
    samples: list[tuple[int, float, float]] = []
    done, batch = 0, max(10, PROFILE.soak_analyses // 20)
    started = time.perf_counter()
    while done < PROFILE.soak_analyses:
        studies = [tiny_study() for _ in range(min(batch, PROFILE.soak_analyses - done))]
        level = asyncio.run(_drive(drilled, 4, studies))
        assert level["errors"] == 0 and level["wrong_study"] == 0, level
        done += level["analyses"]
        samples.append(
            (
                done,
                round(status_mb(drilled.process.pid, "VmRSS"), 1),
                round(status_mb(triton.process.pid, "VmRSS"), 1),
            )
        )
    warm = samples[len(samples) // 4]  # after the first quarter: caches and pools are full
    growth = samples[-1][1] - warm[1]
    record(
        "soak",
        analyses=done,
        minutes=round((time.perf_counter() - started) / 60, 1),
        gateway_mb=[s[1] for s in samples],
        triton_mb=[s[2] for s in samples],
        gateway_growth_mb=round(growth, 1),
        triton_growth_mb=round(samples[-1][2] - warm[2], 1),
    )
    assert growth < max(40.0, 0.1 * warm[1]), f"gateway memory grew {growth:.0f} MB: {samples}"


@pytest.fixture
def narrow(triton: TritonServer, tmp_path: Path) -> Any:
    """A gateway with one worker, a queue of two and 30 requests a minute."""
    gateway = start_gateway(
        tmp_path / "data",
        triton.grpc_url,
        **{**DRILL_ENV, "ICH_RATE_LIMIT_PER_MINUTE": "30"},
        ICH_WORKERS="1",
        ICH_QUEUE_LIMIT="2",
    )
    yield gateway
    gateway.stop()


def test_a_full_queue_and_a_spent_rate_limit_push_back_with_retry_after(
    narrow: GatewayProcess,
) -> None:
    async def burst() -> list[httpx.Response]:
        headers = {"X-API-Key": narrow.key, "Prefer": "respond-async"}
        async with httpx.AsyncClient(base_url=narrow.url, headers=headers, timeout=30) as client:
            studies = [tiny_study()[1] for _ in range(10)]
            return await asyncio.gather(
                *(client.post("/v1/analyses", files=multipart(files)) for files in studies)
            )

    started = time.perf_counter()
    answers = asyncio.run(burst())
    burst_s = time.perf_counter() - started
    accepted = [a.json()["id"] for a in answers if a.status_code == 202]
    full = [a for a in answers if a.status_code == 503]
    assert accepted and full and len(accepted) + len(full) == len(answers)
    for answer in full:
        assert answer.json()["type"].endswith("/queue-full") and int(answer.headers["retry-after"])
    with narrow.client() as client:
        settle(client, accepted, 120)
        limited = [client.get("/v1/analyses?limit=1") for _ in range(40)]
    refused = [a for a in limited if a.status_code == 429]
    assert refused and all(int(a.headers["retry-after"]) >= 1 for a in refused)
    record(
        "backpressure",
        burst=len(answers),
        accepted=len(accepted),
        queue_full_503=len(full),
        burst_answered_s=round(burst_s, 2),
        rate_limited_429=len(refused),
        timeouts=0,
    )

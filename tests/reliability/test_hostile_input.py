"""Hostile input against a real gateway and Triton: every answer to a mutated study or a lying
body is an analysis or a documented problem (never a 5xx, never a hang), the workers stay free,
and the ingestion code itself survives coverage-guided fuzzing (atheris)."""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from hostile_inputs import (  # type: ignore[import-not-found]
    BODY_KINDS,
    TRAVERSING,
    body_of,
    hostile_body,
    hostile_study,
    zip_bomb,
)
from hypothesis import given
from hypothesis import strategies as st
from reliability_support import (  # type: ignore[import-not-found]
    PROBLEM,
    PROFILE,
    as_zip,
    fuzzing,
    multipart,
    record,
    tiny_study,
)

from api.problems import STATUS, TYPE_BASE
from api.process import GatewayProcess

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on the odd values
ANSWER_S = 120.0
"""Longest a single answer may take (a synchronous analysis included) before it counts as hung."""
DOCUMENTED = {200, 202} | {s for s in STATUS.values() if 400 <= s < 500}
FUZZ = Path(__file__).with_name("fuzz_ingest.py")
seen: collections.Counter[str] = collections.Counter()


def _check(answer: httpx.Response, label: str) -> None:
    seen[str(answer.status_code)] += 1
    assert answer.status_code in DOCUMENTED, f"{label}: {answer.status_code} {answer.text[:300]}"
    if answer.status_code >= 400:
        assert answer.headers["content-type"] == PROBLEM, label
        code = answer.json()["type"].removeprefix(TYPE_BASE)
        assert STATUS[code] == answer.status_code, f"{label}: undocumented {code}"


@pytest.fixture(scope="module")
def client(drilled: GatewayProcess) -> httpx.Client:
    return drilled.client(timeout=ANSWER_S)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return zip_bomb()


def test_mutated_studies_get_an_analysis_or_a_documented_problem(client: httpx.Client) -> None:
    tried: collections.Counter[str] = collections.Counter()

    @fuzzing(PROFILE.examples)
    @given(hostile_study(), st.sampled_from(["multipart", "zip", "dicom"]))
    def property(study: tuple[str, list[bytes]], form: str) -> None:
        label, files = study
        tried[label.split()[0]] += 1
        if form == "zip":
            answer = client.post(
                "/v1/analyses", content=as_zip(files), headers={"Content-Type": "application/zip"}
            )
        elif form == "dicom":
            answer = client.post(
                "/v1/analyses", content=files[0], headers={"Content-Type": "application/dicom"}
            )
        else:
            answer = client.post("/v1/analyses", files=multipart(files))
        _check(answer, label)

    property()
    record("hostile", studies=dict(tried))


def test_lying_bodies_and_archives_are_refused_with_a_problem(
    client: httpx.Client, bomb: bytes
) -> None:
    tried: collections.Counter[str] = collections.Counter()

    @fuzzing(PROFILE.examples)
    @given(hostile_body(bomb))
    def property(body: tuple[str, str, bytes]) -> None:
        label, kind, content = body
        tried[label] += 1
        headers = {"Content-Type": kind} if kind else {}
        started = time.monotonic()
        answer = client.post("/v1/analyses", content=content, headers=headers)
        _check(answer, label)
        assert answer.status_code >= 400 or label in ("zip-nested",), label
        assert time.monotonic() - started < 30, f"{label} took {time.monotonic() - started} s"

    for kind in BODY_KINDS:  # each kind at least once, whatever Hypothesis draws
        for member in TRAVERSING if kind == "zip-traversal" else TRAVERSING[:1]:
            property.hypothesis.inner_test((kind, *body_of(kind, b"noise", member, bomb)))
    property()
    record("hostile", bodies=dict(tried))


def test_the_gateway_still_analyses_after_the_fuzzing(
    client: httpx.Client, drilled: GatewayProcess
) -> None:
    study_uid, files = tiny_study()
    answer = client.post("/v1/analyses", files=multipart(files))
    assert answer.status_code == 200 and answer.json()["result"]["study_uid"] == study_uid
    metrics = client.get("/metrics").text
    busy = re.search(r"^ich_workers_busy (\S+)", metrics, re.M)
    assert busy is not None and float(busy.group(1)) == 0.0, "a worker is still held"
    assert client.get("/readyz").status_code == 200
    assert drilled.process.poll() is None
    record("hostile", answers=dict(seen), server_errors=0)


def test_ingestion_survives_coverage_guided_fuzzing(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _, files = tiny_study()
    for n, data in enumerate(files[:3]):
        (corpus / f"seed{n}.dcm").write_bytes(data)
    run = subprocess.run(
        [
            sys.executable,
            str(FUZZ),
            str(corpus),
            f"-max_total_time={PROFILE.atheris_s}",
            "-rss_limit_mb=4096",
            "-timeout=20",
            "-print_final_stats=1",
        ],
        capture_output=True,
        text=True,
        timeout=PROFILE.atheris_s + 120,
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(  # the tests' shared phantoms
                filter(None, [str(FUZZ.parents[1]), os.environ.get("PYTHONPATH")])
            ),
        },
    )
    assert run.returncode == 0, run.stderr[-4000:]
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", run.stderr)
    assert runs is not None and int(runs.group(1)) > 0, run.stderr[-2000:]
    record("atheris", executions=int(runs.group(1)), seconds=PROFILE.atheris_s)

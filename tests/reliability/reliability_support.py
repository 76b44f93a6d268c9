"""What the reliability drills share: the run's profile (short in CI, full under `make
reliability`), the figures they record for docs/reliability.md, small studies that carry a
canary patient name, and a polling helper that accounts for every accepted analysis."""

from __future__ import annotations

import io
import os
import time
import zipfile
from dataclasses import dataclass, replace
from typing import Any

import httpx
from ellipsoid_head import Ellipsoid, EllipsoidHead
from hypothesis import HealthCheck, settings
from pydicom.uid import generate_uid

from ich.phantom.series_writer import SeriesSpec, StudyInfo, to_bytes, write_series

CANARY_NAME, CANARY_ID = "Canary^Reliability", "CANARY-7741"
"""Patient name and ID every test study carries: none may appear in logs, errors or metrics."""

TINY = SeriesSpec(
    slices=8, matrix=64, pixel_spacing_mm=3.6, table_increment_mm=5.0, first_z_mm=-15.0
)
"""The smallest series the model takes (5-slice input) that still covers the phantom's bleed."""
PHANTOM = EllipsoidHead(bleeds=(Ellipsoid(centre=(20.0, 10.0, 5.0), radii=(9.0,) * 3, hu=65.0),))
PROBLEM = "application/problem+json"
DRILL_ENV = {
    "ICH_RATE_LIMIT_PER_MINUTE": "1000000",
    "ICH_MIN_FREE_BYTES": str(64 << 20),
    "ICH_RETRY_AFTER_S": "1",
    "ICH_LOG_LEVEL": "INFO",
}
"""A drill's gateway: only the limits the drill sets itself hold it back."""


@dataclass(frozen=True)
class Profile:
    """How hard each drill pushes."""

    name: str
    examples: int
    """Hypothesis examples per hostile-input property."""
    api_examples: int
    """Schemathesis examples per API operation."""
    atheris_s: int
    load_levels: tuple[int, ...]
    requests_per_level: int
    soak_analyses: int
    """Analyses of the memory soak (the issue's 1,000 in the full run)."""


SHORT = Profile("short (CI)", 25, 8, 15, (1, 4), 12, 60)
FULL = Profile("full", 150, 30, 60, (1, 2, 4, 8), 24, 1000)
PROFILE = FULL if os.environ.get("ICH_RELIABILITY") == "full" else SHORT


def fuzzing(examples: int) -> settings:
    """Hypothesis settings of the drills: reproducible in CI, freshly random in the full run."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=PROFILE is not FULL,
        suppress_health_check=list(HealthCheck),
        database=None,
    )


FIGURES: dict[str, Any] = {"profile": PROFILE.name}
"""Filled by the drills; rendered into docs/reliability.md when ICH_RELIABILITY_REPORT is set."""


def record(section: str, **values: Any) -> None:
    FIGURES.setdefault(section, {}).update(values)


def tiny_study(**spec: Any) -> tuple[str, list[bytes]]:
    """A new study (its own UIDs, the canary patient) as encoded files, and its UID."""
    study = StudyInfo(patient_name=CANARY_NAME, patient_id=CANARY_ID)
    datasets = write_series(PHANTOM, replace(TINY, series_uid=generate_uid(), **spec), study)
    return study.study_uid, [to_bytes(ds) for ds in datasets]


def as_zip(files: list[bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for n, data in enumerate(files):
            archive.writestr(f"{n:03d}.dcm", data)
    return buffer.getvalue()


def multipart(files: list[bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (f"{n:03d}.dcm", data, "application/dicom")) for n, data in enumerate(files)]


def settle(client: httpx.Client, ids: list[str], timeout_s: float) -> dict[str, dict[str, Any]]:
    """Each analysis once it is done or failed (with its problem), polled until ``timeout_s``.

    Raises:
        AssertionError: one is still unfinished, or was lost (404).
    """
    deadline, final = time.monotonic() + timeout_s, {}
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        for analysis_id in list(pending):
            answer = client.get(f"/v1/analyses/{analysis_id}")
            if answer.status_code in (429, 503):
                continue
            assert answer.status_code == 200, f"analysis {analysis_id} lost: {answer.text}"
            body = answer.json()
            if body["status"] in ("done", "failed"):
                final[analysis_id] = body
                pending.remove(analysis_id)
        time.sleep(0.3)
    assert not pending, f"{len(pending)} accepted analyses never finished: {pending[:5]}"
    return final


def accounted(final: dict[str, dict[str, Any]], studies: dict[str, str]) -> dict[str, int]:
    """Checks each finished analysis against the study it was given: a done one carries that
    study's UID, a failed one a recorded reason. Returns counts of done and failed."""
    for analysis_id, body in final.items():
        if body["status"] == "done":
            assert body["result"]["study_uid"] == studies[analysis_id], "result on wrong study"
        else:
            assert body["problem"] and body["problem"]["detail"], f"{analysis_id}: no reason"
    done = sum(b["status"] == "done" for b in final.values())
    return {"accepted": len(final), "done": done, "failed": len(final) - done, "lost": 0}

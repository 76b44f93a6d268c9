"""``ich-client`` as a user runs it, against the real gateway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pydicom
from fhir.resources.R4B.bundle import Bundle

from api.process import GatewayProcess

CLI = str(Path(sys.executable).with_name("ich-client"))
"""The console script installed next to this interpreter."""


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


def test_analyze_prints_json_and_shows_progress(gateway: GatewayProcess, study: Path) -> None:
    done = _run(
        "analyze",
        str(study),
        "--url",
        gateway.url,
        "--key",
        gateway.key,
        "--json",
        "--progress",
        "always",
    )
    assert done.returncode == 0, done.stderr
    analysis = json.loads(done.stdout)
    assert analysis["status"] == "done" and analysis["result"]["any_ich_flagged"] is True
    assert "upload  [" in done.stderr and "100%" in done.stderr
    assert "waiting [" in done.stderr and f"done    {analysis['id']}" in done.stderr


def test_analyze_prints_a_table_and_saves_seg_sr_and_fhir(
    gateway: GatewayProcess, study: Path, tmp_path: Path
) -> None:
    done = _run(
        "analyze",
        str(study),
        "--table",
        "--outputs",
        str(tmp_path / "dicom"),
        "--fhir",
        str(tmp_path / "fhir"),
        env={"ICH_URL": gateway.url, "ICH_API_KEY": gateway.key},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "done in" in lines[0] and "any ICH  FLAGGED" in lines[1]
    assert [line.split()[0] for line in lines[3:6]] == ["IPH", "EDH/SDH", "SAH"]
    assert any(line.lstrip().startswith("#1 ") and " mL (" in line for line in lines)
    assert done.stderr == ""  # no progress when stderr is not a terminal
    seg = next((tmp_path / "dicom").glob("*-seg.dcm"))
    assert pydicom.dcmread(seg).Modality == "SEG"
    assert pydicom.dcmread(next((tmp_path / "dicom").glob("*-sr.dcm"))).Modality == "SR"
    bundle = Bundle.model_validate_json(next((tmp_path / "fhir").glob("*.fhir.json")).read_text())
    assert bundle.type == "transaction"


def test_failures_exit_non_zero_with_the_reason(
    gateway: GatewayProcess, study: Path, small_synth: Path
) -> None:
    refused = _run(
        "analyze",
        "--url",
        gateway.url,
        "--key",
        gateway.key,
        str(small_synth / "manifest.json"),
        study.as_posix(),
    )
    assert refused.returncode == 1
    assert "422 no-dicom" in refused.stderr and refused.stdout.count("analysis ") == 1
    stranger = _run("get", "nope", "--url", gateway.url, "--key", "ich_0_bad")
    assert stranger.returncode == 1 and "401 unknown-key" in stranger.stderr
    no_url = _run("health", env={"ICH_URL": ""})
    assert no_url.returncode == 2 and "url must be" in no_url.stderr
    healthy = _run("health", "--url", gateway.url)
    assert healthy.returncode == 0 and healthy.stdout.startswith("ready (triton ok")

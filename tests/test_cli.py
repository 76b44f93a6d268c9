"""The `ich` command line, run as a user would (through Typer's runner)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ich.cli import app

runner = CliRunner()


def test_synth_then_inspect_json(tmp_path: Path) -> None:
    out = tmp_path / "study"
    result = runner.invoke(app, ["synth", str(out), "--matrix", "48", "--tilt", "10"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["inspect", str(out), "--json", "--decode"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    selected = [s for s in report["series"] if s["selected"]]
    assert len(selected) == 1 and selected[0]["description"] == "HEAD 5mm STND"
    assert report["selected_series_uid"] == selected[0]["series_uid"]
    assert {w["code"] for w in report["warnings"]} >= {"files_skipped", "gantry_tilt_corrected"}
    assert report["volume"]["shape"] == [32, 48, 48]
    assert report["error"] is None


def test_inspect_table_output(tmp_path: Path) -> None:
    runner.invoke(app, ["synth", str(tmp_path), "--matrix", "32"])
    result = runner.invoke(app, ["inspect", str(tmp_path)], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "HEAD 5mm STND" in result.output
    assert "series 4 not eligible: contrast-enhanced" in result.output
    assert "files_skipped" in result.output


def test_bad_input_exits_2_with_an_actionable_message(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    result = runner.invoke(app, ["inspect", str(tmp_path)])
    assert result.exit_code == 2
    assert "No DICOM images" in result.output
    assert "Send the CT images as DICOM" in result.output
    assert "Traceback" not in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip()


def test_policy_file_and_overrides(tmp_path: Path) -> None:
    study = tmp_path / "study"
    runner.invoke(app, ["synth", str(study), "--matrix", "32"])
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"allow_contrast": True, "preferred_thickness_mm": [2.5, 5]}))
    result = runner.invoke(app, ["inspect", str(study), "--json", "--policy", str(policy)])
    contrast = next(s for s in json.loads(result.output)["series"] if s["series_number"] == 4)
    assert contrast["eligible"]
    result = runner.invoke(
        app, ["inspect", str(study), "--json", "--policy", str(policy), "--no-allow-contrast"]
    )
    contrast = next(s for s in json.loads(result.output)["series"] if s["series_number"] == 4)
    assert not contrast["eligible"]
    for bad, field in (
        ({"min_slices": 0}, "min_slices"),
        ({"allow_contrst": True}, "allow_contrst"),
    ):
        policy.write_text(json.dumps(bad))
        result = runner.invoke(app, ["inspect", str(study), "--policy", str(policy)])
        assert result.exit_code == 2 and field in result.output

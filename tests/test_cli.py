"""The `ich` command line, run as a user would (through Typer's runner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ich.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small synthetic study with every distractor series, written by ``ich synth``."""
    out = tmp_path_factory.mktemp("synth")
    args = "--studies 1 --seed 3 --matrix 128 --slice-mm 5 --distractors 1 --prevalence 1"
    result = runner.invoke(app, ["synth", "--out", str(out), *args.split()])
    assert result.exit_code == 0, result.output
    assert "wrote 1 studies (1 with hemorrhage)" in result.output
    return out / "case_00000" / "dicom"


def test_synth_then_inspect_json(study: Path) -> None:
    result = runner.invoke(app, ["inspect", str(study), "--json", "--decode"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    selected = [s for s in report["series"] if s["selected"]]
    assert len(selected) == 1 and selected[0]["description"].startswith("HEAD 5mm")
    assert report["selected_series_uid"] == selected[0]["series_uid"]
    assert {w["code"] for w in report["warnings"]} >= {"files_skipped"}
    assert report["volume"]["shape"][1:] == [128, 128]
    assert report["error"] is None


def test_inspect_table_output(study: Path) -> None:
    result = runner.invoke(app, ["inspect", str(study)], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "HEAD 5mm" in result.output
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


def test_policy_file_and_overrides(study: Path, tmp_path: Path) -> None:
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


def test_synth_on_missing_real_backgrounds_exits_2(tmp_path: Path) -> None:
    out, nowhere = str(tmp_path / "out"), str(tmp_path / "nowhere")
    args = ["synth", "--out", out, "--background", "real", "--real-dir", nowhere]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "Real backgrounds unavailable" in result.output and "--real-dir" in result.output


def test_synth_refuses_odd_matrix_files_and_old_data_sets(tmp_path: Path) -> None:
    out = tmp_path / "set"
    small = ["--matrix", "64", "--slice-mm", "5", "--prevalence", "0", "--distractors", "0"]
    result = runner.invoke(app, ["synth", "--out", str(out), "--matrix", "101"])
    assert result.exit_code == 2 and "must be even" in result.output
    assert runner.invoke(app, ["synth", "--out", str(out), *small]).exit_code == 0
    again = runner.invoke(app, ["synth", "--out", str(out), *small])
    assert again.exit_code == 2 and "--overwrite" in again.output
    replaced = runner.invoke(app, ["synth", "--out", str(out), *small, "--overwrite"])
    assert replaced.exit_code == 0
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = runner.invoke(app, ["synth", "--out", str(afile), *small])
    assert result.exit_code == 2 and "is a file" in result.output


def test_synth_with_workers_writes_the_same_bytes(tmp_path: Path) -> None:
    args = "--studies 3 --seed 4 --matrix 64 --slice-mm 5 --prevalence 1 --distractors 0.5"
    for name, workers in (("one", "1"), ("two", "2")):
        out = str(tmp_path / name)
        result = runner.invoke(app, ["synth", "--out", out, *args.split(), "--workers", workers])
        assert result.exit_code == 0, result.output
    one = {p.relative_to(tmp_path / "one"): p.read_bytes() for p in (tmp_path / "one").rglob("*")
           if p.is_file()}  # fmt: skip
    two = {p.relative_to(tmp_path / "two"): p.read_bytes() for p in (tmp_path / "two").rglob("*")
           if p.is_file()}  # fmt: skip
    assert one.keys() == two.keys() and len(one) > 3
    assert all(one[name] == two[name] for name in one)

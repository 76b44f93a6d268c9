"""Zip archives as ``ich analyze`` and ``ich inspect`` read them: refused by the bytes their
members really expand to, never by one member's compression ratio or a header's word."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from archive_cases import (  # type: ignore[import-not-found]
    AIR_SLICE,
    member_ratios,
    study_with_an_air_slice,
    understated,
    zipped,
)

from ich.dicom import InputLimitError, InputLimits, NoDicomError, load, scan
from ich.serving.client import study_files


def test_a_study_whose_air_slice_compresses_500_fold_is_accepted(tmp_path: Path) -> None:
    study_uid, files = study_with_an_air_slice()
    archive = zipped(files)
    assert max(member_ratios(archive)) > 200  # the old per-member rule refused this study
    path = tmp_path / "study.zip"
    path.write_bytes(archive)
    volume = load(path)  # what `ich analyze study.zip` reads
    assert volume.hu.shape[0] == AIR_SLICE.slices and volume.study_uid == study_uid
    assert study_files(path) == files  # what `ich analyze --server` sends
    assert load(archive).hu.shape == volume.hu.shape  # an upload's bytes


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        (InputLimits(max_total_bytes=1 << 20, max_zip_ratio=10_000), "whole input"),
        (InputLimits(), "fold"),
    ],
    ids=["total", "ratio"],
)
def test_a_member_whose_header_understates_it_is_refused_by_its_real_bytes(
    limits: InputLimits, reason: str
) -> None:
    bomb = understated(b"\0" * (4 << 20), 100)
    with pytest.raises(InputLimitError, match="expands to more than") as refused:
        scan(bomb, limits)
    assert "zip bomb" in str(refused.value) and reason in str(refused.value)


def test_a_lying_member_within_the_limits_is_skipped_as_unreadable() -> None:
    _, files = study_with_an_air_slice()
    buffer = io.BytesIO(zipped(files))
    with zipfile.ZipFile(io.BytesIO(understated(b"\0" * 1000, 10))) as lying:
        inner = lying.open(lying.infolist()[0]).read()  # the 10 bytes its header admits
    assert inner == b"\0" * 10
    bundle = [buffer.getvalue(), understated(b"\0" * 1000, 10)]
    report = scan(bundle)
    assert len(report.series) == 1
    assert [s.name for s in report.skipped if s.unreadable] == ["<upload 1>:bomb.dcm"]


def test_members_zipfile_cannot_bound_are_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("slice.dcm", b"\0" * 1000)
    with pytest.raises(NoDicomError, match="deflate"):
        scan(buffer.getvalue())

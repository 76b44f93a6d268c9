"""Zip uploads on the gateway's own path, without a server: the body streamed by
``api.uploads.receive`` (what ``POST /v1/analyses`` and STOW-RS call), then the header scan and
series selection of ``api.intake`` (what a worker runs before Triton). Archives are judged by
the bytes their members really expand to, never by one member's ratio or a header's word."""

from __future__ import annotations

import asyncio
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
from starlette.requests import Request
from starlette.types import Message

from api.intake import select_series
from api.problems import ProblemError
from api.settings import Settings
from api.uploads import Upload, receive


def _upload(body: bytes, folder: Path, settings: Settings) -> Upload:
    """``body`` received as an ``application/zip`` request, in chunks as a client sends it."""
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]

    async def arrive() -> Message:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/analyses",
        "headers": [(b"content-type", b"application/zip")],
    }
    return asyncio.run(receive(Request(scope, arrive), folder, settings))


def test_a_study_whose_air_slice_compresses_500_fold_is_accepted(tmp_path: Path) -> None:
    study_uid, files = study_with_an_air_slice()
    archive = zipped(files)
    assert max(member_ratios(archive)) > 200  # the old per-member rule refused this study
    settings = Settings(data_dir=tmp_path)
    upload = _upload(archive, tmp_path / "spool" / "a", settings)
    assert sorted(p.read_bytes() for p in upload.files) == sorted(files)
    chosen = select_series(upload.files, settings).selection.chosen
    assert chosen.series.study_uid == study_uid
    assert len(chosen.grid.instances) == AIR_SLICE.slices


@pytest.mark.parametrize(
    ("limits", "reason"),
    [({"max_upload_bytes": 256 << 10, "max_zip_ratio": 10_000}, "whole input"), ({}, "fold")],
    ids=["total", "ratio"],
)
def test_a_member_whose_header_understates_it_is_refused_by_its_real_bytes(
    tmp_path: Path, limits: dict[str, float], reason: str
) -> None:
    settings = Settings(data_dir=tmp_path, **limits)  # type: ignore[arg-type]
    folder = tmp_path / "spool" / "b"
    bomb = understated(b"\0" * (4 << 20), 100)
    with pytest.raises(ProblemError) as refused:
        _upload(bomb, folder, settings)
    assert refused.value.code == "input-limit"
    assert "zip bomb" in refused.value.message and reason in refused.value.message
    assert not folder.exists()  # nothing of it is kept


def test_a_member_compressed_by_an_unbounded_method_is_a_bad_request(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("slice.dcm", b"\0" * 1000)
    with pytest.raises(ProblemError) as refused:
        _upload(buffer.getvalue(), tmp_path / "spool" / "c", Settings(data_dir=tmp_path))
    assert refused.value.code == "bad-request" and "deflate" in refused.value.message

"""Study bodies stream from disk in bounded chunks, replay identically for retries, and refuse
inputs that cannot be sent as measured."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from ich_client import StudyInputError
from ich_client.uploads import CHUNK, prepare


def _collect_async(upload: object) -> bytes:
    async def gather() -> bytes:
        return b"".join([chunk async for chunk in upload.astream()])  # type: ignore[attr-defined]

    return asyncio.run(gather())


def test_a_folder_streams_in_bounded_chunks_and_replays(tmp_path: Path) -> None:
    (tmp_path / "series" / "nested").mkdir(parents=True)
    big = tmp_path / "series" / "nested" / "big.dcm"
    big.write_bytes(os.urandom(3 * CHUNK + 17))
    (tmp_path / "series" / "small.dcm").write_bytes(b"DICM" * 10)
    (tmp_path / "series" / ".DS_Store").write_bytes(b"finder")
    upload = prepare(tmp_path / "series")
    assert upload.files == 2 and upload.content_type.startswith("multipart/form-data; boundary=")
    chunks = list(upload.stream())
    body = b"".join(chunks)
    assert max(map(len, chunks)) <= CHUNK and len(body) == upload.length
    assert b'filename="nested/big.dcm"' in body and b"finder" not in body
    assert body == b"".join(upload.stream()) == _collect_async(upload)


def test_a_zip_is_sent_as_is(tmp_path: Path) -> None:
    import zipfile

    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("a.dcm", b"x" * 100)
    upload = prepare(archive)
    assert upload.content_type == "application/zip"
    assert b"".join(upload.stream()) == archive.read_bytes()
    assert prepare(archive.read_bytes()).content_type == "application/zip"
    several = b"".join(prepare([archive, archive]).stream())  # a list: each part says what it is
    assert several.count(b"Content-Type: application/zip") == 2
    assert prepare(b"\0" * 128 + b"DICM").content_type == "application/dicom"


def test_a_file_that_changes_while_sending_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "growing.dcm"
    path.write_bytes(b"a" * 1000)
    upload = prepare([path])
    path.write_bytes(b"a" * 2000)
    with pytest.raises(StudyInputError, match="changed while"):
        b"".join(upload.stream())
    path.write_bytes(b"a" * 10)
    with pytest.raises(StudyInputError, match="changed while"):
        b"".join(upload.stream())


def test_nothing_to_send_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StudyInputError, match="empty"):
        prepare(b"")
    (tmp_path / ".hidden").write_bytes(b"x")
    with pytest.raises(StudyInputError, match="No files to send"):
        prepare(tmp_path)

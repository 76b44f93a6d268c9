"""A study as a request body that streams from disk: a folder or list of DICOM files as
``multipart/form-data``, a zip as ``application/zip``, or bytes held in memory.

The body is described by segments (literal bytes or files) with a known length, so it is sent
with a Content-Length, read in 1 MiB chunks (a 2 GB study never sits in memory) and can be
replayed when a submission is retried.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ich_client.errors import StudyInputError

CHUNK = 1 << 20
Progress = Callable[[int, int], None]
"""Called with (bytes sent, bytes in all) as an upload proceeds."""
StudySource = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | bytes
"""A folder (read recursively), one DICOM or zip file, a list of files or folders, or the
bytes of one zip archive or DICOM file."""


@dataclass(frozen=True)
class FilePart:
    path: Path
    size: int

    def chunks(self) -> Iterator[bytes]:
        with self.path.open("rb") as handle:
            left = self.size
            while left:
                chunk = self._next(handle, left)
                left -= len(chunk)
                yield chunk

    async def achunks(self) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(self.path.open, "rb")
        try:
            left = self.size
            while left:
                chunk = await asyncio.to_thread(self._next, handle, left)
                left -= len(chunk)
                yield chunk
        finally:
            handle.close()

    def _next(self, handle: BinaryIO, left: int) -> bytes:
        """The next chunk of the ``left`` bytes still to send; refuses a file whose size
        changed since the upload was measured (its Content-Length would be wrong)."""
        chunk = handle.read(min(CHUNK, left))
        if not chunk or (len(chunk) == left and handle.read(1)):
            raise StudyInputError(f"{self.path} changed while it was being uploaded.")
        return chunk


Segment = bytes | FilePart


@dataclass(frozen=True)
class StudyUpload:
    """What one submission sends; iterate it again to resend it."""

    content_type: str
    segments: tuple[Segment, ...]
    files: int

    @property
    def length(self) -> int:
        return sum(len(s) if isinstance(s, bytes) else s.size for s in self.segments)

    def stream(self, progress: Progress | None = None) -> Iterator[bytes]:
        counter = _Counter(self.length, progress)
        for segment in self.segments:
            for chunk in [segment] if isinstance(segment, bytes) else segment.chunks():
                yield counter.add(chunk)

    async def astream(self, progress: Progress | None = None) -> AsyncIterator[bytes]:
        counter = _Counter(self.length, progress)
        for segment in self.segments:
            if isinstance(segment, bytes):
                yield counter.add(segment)
            else:
                async for chunk in segment.achunks():
                    yield counter.add(chunk)


class _Counter:
    def __init__(self, total: int, progress: Progress | None) -> None:
        self.sent, self.total, self.progress = 0, total, progress

    def add(self, chunk: bytes) -> bytes:
        self.sent += len(chunk)
        if self.progress is not None:
            self.progress(self.sent, self.total)
        return chunk


def prepare(study: StudySource) -> StudyUpload:
    """The request body for a study source (see :data:`StudySource`).

    Raises:
        StudyInputError: a path does not exist, or there are no files to send.
    """
    if isinstance(study, bytes | bytearray | memoryview):
        data = bytes(study)
        if not data:
            raise StudyInputError("The study is empty (0 bytes).")
        kind = "application/zip" if data[:4] == b"PK\x03\x04" else "application/dicom"
        return StudyUpload(kind, (data,), 1)
    paths = [Path(study)] if isinstance(study, str | os.PathLike) else [Path(p) for p in study]
    for path in paths:
        if not path.exists():
            raise StudyInputError(f"{path} does not exist.")
    if len(paths) == 1 and paths[0].is_file() and zipfile.is_zipfile(paths[0]):
        return StudyUpload("application/zip", (_part(paths[0]),), 1)
    files = [(name, path) for root in paths for name, path in _files(root)]
    if not files:
        raise StudyInputError(f"No files to send in {', '.join(map(str, paths))}.")
    return _multipart(files)


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    """(name to send, path) of every regular, non-hidden file under root, in a stable order."""
    if root.is_file():
        yield root.name, root
        return
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not any(p.startswith(".") for p in relative.parts):
            yield relative.as_posix(), path


def _part(path: Path) -> FilePart:
    try:
        return FilePart(path, path.stat().st_size)
    except OSError as error:
        raise StudyInputError(f"Cannot read {path}: {error.strerror}.") from None


def _multipart(files: list[tuple[str, Path]]) -> StudyUpload:
    boundary = uuid.uuid4().hex
    segments: list[Segment] = []
    for name, path in files:
        quoted = name.replace("\\", "/").replace('"', "%22").replace("\r", "").replace("\n", "")
        kind = "application/zip" if zipfile.is_zipfile(path) else "application/dicom"
        header = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="{quoted}"\r\nContent-Type: {kind}\r\n\r\n'
        )
        segments += [header.encode(), _part(path), b"\r\n"]
    segments.append(f"--{boundary}--\r\n".encode())
    return StudyUpload(f"multipart/form-data; boundary={boundary}", tuple(segments), len(files))

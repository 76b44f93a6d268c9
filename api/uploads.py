"""Request bodies streamed to a spool directory, never held whole in memory.

Accepted: ``multipart/form-data`` (file parts, plus small text fields), ``multipart/related;
type="application/dicom"`` (DICOMweb STOW-RS), ``application/zip`` and ``application/dicom``.
Files are written under names the gateway chooses, so client-supplied names cannot escape the
spool; zip members are checked for traversal and expansion before anything is accepted.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import shutil
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from api.problems import ProblemError
from api.settings import Settings
from ich.dicom import InputLimitError, NoDicomError
from ich.dicom.sources import UNREADABLE_ZIP, ArchiveExpansion

ZIP_TYPES = {"application/zip", "application/x-zip-compressed"}
MAX_FIELD_BYTES = 4096
"""Text fields of a form (e.g. ``callback_url``) are short."""


@dataclass
class Upload:
    """What a request body left in the spool."""

    directory: Path
    files: list[Path] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    size: int = 0
    digest: str = ""
    """SHA-256 of the files and fields (not of the multipart framing, whose boundary differs
    between retries): the same Idempotency-Key with other content is a conflict."""


class _Sink:
    """Writes bytes into numbered spool files, enforcing the size and file-count limits."""

    def __init__(self, upload: Upload, settings: Settings) -> None:
        self.upload, self.settings = upload, settings
        self.hash = hashlib.sha256()
        self.handle: BinaryIO | None = None
        self.field: tuple[str, bytearray] | None = None

    def count(self, chunk: bytes) -> None:
        self.upload.size += len(chunk)
        if self.upload.size > self.settings.max_upload_bytes:
            raise ProblemError(
                "too-large",
                f"The request exceeds the upload limit of {self.settings.max_upload_bytes:,} "
                "bytes; send one study per request.",
            )

    def open(self, suffix: str) -> None:
        if len(self.upload.files) >= self.settings.max_files:
            raise ProblemError(
                "input-limit",
                f"More than {self.settings.max_files} files in one request; send one study.",
            )
        path = self.upload.directory / f"{len(self.upload.files):05d}{suffix}"
        self.upload.files.append(path)
        self.hash.update(b"\x00file\x00")
        self.handle = path.open("wb")

    def write(self, data: bytes) -> None:
        self.hash.update(data)
        if self.handle is not None:
            self.handle.write(data)
        elif self.field is not None:
            self.field[1].extend(data)
            if len(self.field[1]) > MAX_FIELD_BYTES:
                raise ProblemError("bad-request", f"Form field {self.field[0]!r} is too long.")

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        if self.field is not None:
            name, value = self.field
            self.upload.fields[name] = value.decode("utf-8", "replace")
            self.field = None


def _media_type(request: Request) -> tuple[str, dict[bytes, bytes]]:
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    return kind.decode().lower(), options


async def receive(
    request: Request, directory: Path, settings: Settings, stow: bool = False
) -> Upload:
    """Stream the body into ``directory`` (zips unpacked); on any error here the directory is
    removed, after a successful return it is the caller's.

    Raises:
        ProblemError: unsupported content type (415), too large (413), malformed (400).
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes:
        raise ProblemError(
            "too-large",
            f"Content-Length {int(declared):,} exceeds the upload limit of "
            f"{settings.max_upload_bytes:,} bytes.",
        )
    try:
        directory.mkdir(parents=True, exist_ok=False)
    except OSError as error:
        raise _full(error, settings) from None
    upload = Upload(directory)
    try:
        await _receive(request, upload, settings, stow)
        if not upload.files:
            raise ProblemError("no-dicom", "The request holds no files.", "No DICOM images")
        upload.files = await asyncio.to_thread(_unpack, upload.files, settings)
    except OSError as error:
        shutil.rmtree(directory, ignore_errors=True)
        raise _full(error, settings) from None
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return upload


def _full(error: OSError, settings: Settings) -> Exception:
    """storage-full (503) for a full disk or quota; any other OS error as it is."""
    if error.errno not in (errno.ENOSPC, errno.EDQUOT):
        return error
    return ProblemError(
        "storage-full",
        "The gateway's spool ran out of disk space while receiving; nothing was kept. Retry "
        f"in {settings.retry_after_s} s.",
        "Storage full",
    )


async def _chunks(request: Request, settings: Settings) -> AsyncIterator[bytes]:
    """The body's chunks; a sender silent for ``upload_idle_timeout_s`` is dropped, so slow
    uploads cannot hold a place in the queue (or a worker's disk) for ever."""
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(anext(stream), settings.upload_idle_timeout_s)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ProblemError(
                "request-timeout",
                f"The upload sent nothing for {settings.upload_idle_timeout_s:g} s and was "
                "dropped; nothing was kept. Send the study again.",
                "Upload stalled",
            ) from None
        yield chunk


async def _receive(request: Request, upload: Upload, settings: Settings, stow: bool) -> None:
    kind, options = _media_type(request)
    sink = _Sink(upload, settings)
    if stow and (kind != "multipart/related" or options.get(b"type") != b"application/dicom"):
        raise ProblemError(
            "unsupported-media-type",
            'STOW-RS takes multipart/related; type="application/dicom" bodies.',
            "Unsupported media type",
        )
    if kind in ("multipart/form-data", "multipart/related"):
        await _multipart(request, sink, options, settings)
    elif kind in ZIP_TYPES or kind == "application/dicom":
        sink.open(".zip" if kind in ZIP_TYPES else ".dcm")
        async for chunk in _chunks(request, settings):
            sink.count(chunk)
            sink.write(chunk)
        sink.close()
    else:
        raise ProblemError(
            "unsupported-media-type",
            f"Content-Type {kind or 'none'!r} is not accepted: send multipart/form-data (file "
            "parts), application/zip or application/dicom.",
            "Unsupported media type",
        )
    upload.digest = sink.hash.hexdigest()


async def _multipart(
    request: Request, sink: _Sink, options: dict[bytes, bytes], settings: Settings
) -> None:
    boundary = options.get(b"boundary")
    if not boundary:
        raise ProblemError("bad-request", "The multipart Content-Type has no boundary.")
    headers: dict[str, str] = {}
    name: list[bytes] = []
    value: list[bytes] = []

    def header_field(data: bytes, start: int, end: int) -> None:
        name.append(data[start:end])

    def header_value(data: bytes, start: int, end: int) -> None:
        value.append(data[start:end])

    def header_end() -> None:
        headers[b"".join(name).decode("latin-1").lower()] = b"".join(value).decode("latin-1")
        name.clear()
        value.clear()

    def headers_finished() -> None:
        kind, _ = parse_options_header(headers.get("content-type", ""))
        _, disposition = parse_options_header(headers.get("content-disposition", ""))
        headers.clear()
        if b"filename" in disposition or kind.decode().lower() in (
            "application/dicom",
            "application/octet-stream",
            *ZIP_TYPES,
        ):
            sink.open(".zip" if kind.decode().lower() in ZIP_TYPES else ".dcm")
        else:
            field = disposition.get(b"name", b"").decode("utf-8", "replace")
            sink.hash.update(b"\x00field\x00" + field.encode())
            sink.field = (field, bytearray())

    def part_data(data: bytes, start: int, end: int) -> None:
        sink.write(data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": header_field,
            "on_header_value": header_value,
            "on_header_end": header_end,
            "on_headers_finished": headers_finished,
            "on_part_data": part_data,
            "on_part_end": sink.close,
        },
    )
    try:
        async for chunk in _chunks(request, settings):
            sink.count(chunk)
            parser.write(chunk)
        parser.finalize()
    except (ProblemError, OSError):
        raise
    except Exception as error:  # the parser's own errors: a malformed body
        raise ProblemError("bad-request", f"Malformed multipart body: {error}") from None
    finally:
        sink.close()


def _unpack(files: list[Path], settings: Settings) -> list[Path]:
    """The spooled files, zips replaced by their members written beside them (headers are then
    read from files, not by decompressing each member again). One budget of files and bytes
    covers the whole request, however many archives it holds; it is spent by the bytes the
    members really expand to, whatever their headers state."""
    limits = settings.input_limits
    budget, unpacked = limits.max_total_bytes, []
    for path in files:
        if path.suffix != ".zip":
            unpacked.append(path)
            continue
        try:
            with zipfile.ZipFile(path) as archive:
                check_archive(archive, settings)
                expansion = ArchiveExpansion(
                    archive, path.stat().st_size, "The archive", limits, budget
                )
                for n, info in enumerate(expansion.members):
                    if len(unpacked) >= limits.max_files:
                        raise ProblemError(
                            "input-limit",
                            f"More than {limits.max_files} files in one request; send one study.",
                        )
                    target = path.with_name(f"{path.stem}-{n:05d}.dcm")
                    with target.open("wb") as out:
                        for chunk in expansion.read(info):
                            out.write(chunk)
                    unpacked.append(target)
                budget -= expansion.produced
        except InputLimitError as error:
            raise ProblemError("input-limit", str(error), "Archive too large") from None
        except NoDicomError as error:  # compressed by a method whose output is not bounded
            raise ProblemError("bad-request", str(error)) from None
        except UNREADABLE_ZIP as error:  # corrupt, encrypted or exotic archives
            raise ProblemError("bad-request", f"The zip archive cannot be read: {error}.") from None
        path.unlink()
    return unpacked


def _unsafe(member: str) -> bool:
    path = PurePosixPath(member.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or bool(PureWindowsPath(member).drive)


def check_archive(archive: zipfile.ZipFile, settings: Settings) -> None:
    """Refuses a zip whose member names leave it or that holds too many members (how far they
    expand is counted while they are read: see ``ArchiveExpansion``)."""
    limits = settings.input_limits
    infos = archive.infolist()
    traversing = [i.filename for i in infos if _unsafe(i.filename)]
    if traversing:
        raise ProblemError(
            "input-limit",
            f"The archive has member paths outside it ({traversing[0]!r}); refusing it.",
            "Unsafe archive",
        )
    if len(infos) > limits.max_files:
        raise ProblemError(
            "input-limit", f"The archive holds {len(infos)} files (limit {limits.max_files})."
        )

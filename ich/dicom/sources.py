"""Discovery of candidate files: a directory tree, a zip archive, or in-memory files.

Nothing here parses DICOM; it only enumerates byte sources, each of which can be opened more
than once (headers are read first, pixels only for the selected series). Limits protect the
service from archive bombs and runaway uploads.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel, ConfigDict, Field

from ich.dicom.errors import InputLimitError, NoDicomError

InputItem = str | os.PathLike[str] | bytes | tuple[str, bytes] | BinaryIO
"""One input: a path (file, directory or zip), raw bytes, a ``(name, bytes)`` pair, or a file."""


class InputLimits(BaseModel):
    """Bounds on what one request may make the service read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_files: int = Field(20_000, gt=0, description="Most candidate files in one input.")
    max_total_bytes: int = Field(8 << 30, gt=0, description="Most bytes, after unzipping.")
    max_zip_ratio: float = Field(
        200.0,
        gt=1,
        description="Most bytes an archive may expand to, as a multiple of its own size (of the "
        "whole archive: one blank slice alone may compress 500-fold).",
    )


UNREADABLE_ZIP = (
    zipfile.BadZipFile,
    OSError,
    EOFError,
    RuntimeError,
    NotImplementedError,
    zlib.error,
)
"""What zipfile raises on corrupt, truncated, encrypted or exotic archives."""
READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
"""Compression methods whose output zipfile produces in chunks of the size asked for."""
CHUNK_BYTES = 1 << 20
"""Decompressed bytes held at once while a member is read."""


def _stating(info: zipfile.ZipInfo, size: int) -> zipfile.ZipInfo:
    """``info`` with ``size`` as its uncompressed size: zipfile stops reading a member there."""
    stated = copy.copy(info)
    stated.file_size = size
    return stated


class ArchiveExpansion:
    """The bytes one zip's members really decompress to, counted as they are produced.

    The archive is refused once they pass ``max_zip_ratio`` times its own size or the
    ``budget`` (``max_total_bytes`` unless given). The sizes its headers state are written by
    whoever made it, so they can refuse an archive early but never admit one.
    """

    def __init__(
        self,
        archive: zipfile.ZipFile,
        size: int,
        label: str,
        limits: InputLimits,
        budget: int | None = None,
    ) -> None:
        total = limits.max_total_bytes if budget is None else budget
        self.archive, self.label = archive, label
        self.limit = min(total, int(size * limits.max_zip_ratio))
        self.reason = (
            f"{limits.max_zip_ratio:.0f}-fold the archive's {size:,} bytes"
            if self.limit < total
            else f"the whole input may expand to {limits.max_total_bytes:,} bytes"
        )
        self.produced = 0
        self.members = [i for i in archive.infolist() if not i.is_dir()]
        exotic = [i for i in self.members if i.compress_type not in READABLE_METHODS]
        if exotic:  # zipfile decompresses them unbounded by the size asked for
            raise NoDicomError(
                f"{label}: member {exotic[0].filename!r} uses zip compression method "
                f"{exotic[0].compress_type}; only stored and deflated members (what zip tools "
                "write by default) are read. Zip the study again with deflate."
            )
        claimed = sum(i.file_size for i in self.members)
        if claimed > self.limit:
            raise InputLimitError(
                f"{label} states that it expands to {claimed:,} bytes, more than the "
                f"{self.limit:,} allowed ({self.reason}); refusing a possible zip bomb."
            )

    def read(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        """The member's bytes as they are decompressed, however few its header states.

        Raises:
            InputLimitError: the archive's members have now produced more than allowed.
            zipfile.BadZipFile: the bytes do not match the member's CRC-32.
        """
        capped = _stating(info, self.limit - self.produced + 1)
        capped.CRC = None  # else zipfile checks it on the bytes up to the cap, before we see them
        crc = 0
        with self.archive.open(capped) as stream:
            while chunk := stream.read(CHUNK_BYTES):
                self.produced += len(chunk)
                if self.produced > self.limit:
                    raise InputLimitError(
                        f"{self.label} expands to more than the {self.limit:,} bytes allowed "
                        f"({self.reason}); refusing a possible zip bomb."
                    )
                crc = zlib.crc32(chunk, crc)
                yield chunk
        if crc != info.CRC:
            raise zipfile.BadZipFile(f"Bad CRC-32 for member {info.filename!r}")


@dataclass(frozen=True)
class DicomSource:
    """One candidate file: a display name and a re-openable byte stream."""

    name: str
    size: int
    opener: Callable[[], BinaryIO]

    def open(self) -> BinaryIO:
        """A fresh binary stream positioned at the start of the file."""
        return self.opener()

    def read_bytes(self) -> bytes:
        with self.open() as fh:
            return fh.read()


def _file_source(path: Path, name: str) -> DicomSource:
    return DicomSource(name=name, size=path.stat().st_size, opener=lambda: path.open("rb"))


def _bytes_source(name: str, data: bytes) -> DicomSource:
    return DicomSource(name=name, size=len(data), opener=lambda: io.BytesIO(data))


def _zip_sources(
    archive: Callable[[], zipfile.ZipFile], label: str, size: int, limits: InputLimits
) -> Iterator[DicomSource]:
    """Members of a zip, each decompressed once here to count the bytes it really holds."""
    try:
        zf = archive()
    except UNREADABLE_ZIP as exc:
        raise NoDicomError(f"{label} is not a readable zip archive ({exc}).") from exc
    with zf:
        expansion = ArchiveExpansion(zf, size, label, limits)
        for info in expansion.members:
            expanded = 0
            with contextlib.suppress(*UNREADABLE_ZIP):  # the header scan reports it unreadable
                for chunk in expansion.read(info):
                    expanded += len(chunk)

            def opener(member: zipfile.ZipInfo = info, expanded: int = expanded) -> BinaryIO:
                with archive() as reopened:
                    return io.BytesIO(reopened.read(_stating(member, expanded)))

            yield DicomSource(name=f"{label}:{info.filename}", size=expanded, opener=opener)


def _expand(item: InputItem, index: int, limits: InputLimits) -> Iterator[DicomSource]:
    if isinstance(item, tuple):
        name, data = item
        yield from _expand_bytes(name, data, limits)
    elif isinstance(item, bytes | bytearray | memoryview):
        yield from _expand_bytes(f"<upload {index}>", bytes(item), limits)
    elif hasattr(item, "read"):
        data = item.read()  # type: ignore[union-attr]
        yield from _expand_bytes(getattr(item, "name", f"<upload {index}>"), data, limits)
    else:
        yield from _expand_path(Path(item), limits)


def _expand_bytes(name: str, data: bytes, limits: InputLimits) -> Iterator[DicomSource]:
    if zipfile.is_zipfile(io.BytesIO(data)):
        yield from _zip_sources(lambda: zipfile.ZipFile(io.BytesIO(data)), name, len(data), limits)
    else:
        yield _bytes_source(name, data)


def _expand_path(path: Path, limits: InputLimits) -> Iterator[DicomSource]:
    if not path.exists():
        raise NoDicomError(f"{path} does not exist.")
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for fname in sorted(files):
                file = Path(root) / fname
                if file.is_file():
                    yield _file_source(file, str(file.relative_to(path)))
    elif zipfile.is_zipfile(path):
        yield from _zip_sources(
            lambda: zipfile.ZipFile(path), path.name, path.stat().st_size, limits
        )
    else:
        yield _file_source(path, path.name)


def _is_single(inputs: object) -> bool:
    if isinstance(inputs, str | os.PathLike | bytes | bytearray | memoryview):
        return True
    if isinstance(inputs, tuple):
        return len(inputs) == 2 and isinstance(inputs[0], str) and isinstance(inputs[1], bytes)
    return hasattr(inputs, "read")


def iter_sources(
    inputs: InputItem | Iterable[InputItem], limits: InputLimits | None = None
) -> list[DicomSource]:
    """Every candidate file in ``inputs``, in a stable order, within ``limits``.

    Raises:
        NoDicomError: a path does not exist, or nothing at all was given.
        InputLimitError: too many files or bytes, or an archive that expands too far.
    """
    limits = limits or InputLimits()
    items = [inputs] if _is_single(inputs) else list(inputs)  # type: ignore[arg-type]
    sources: list[DicomSource] = []
    total = 0
    for index, item in enumerate(items):
        for source in _expand(item, index, limits):
            sources.append(source)
            total += source.size
            if len(sources) > limits.max_files:
                raise InputLimitError(
                    f"More than {limits.max_files} files in one input; send one study at a time."
                )
            if total > limits.max_total_bytes:
                raise InputLimitError(
                    f"Input exceeds {limits.max_total_bytes / 2**30:.1f} GiB; send one study at "
                    "a time."
                )
    if not sources:
        raise NoDicomError("The input holds no files.")
    return sources

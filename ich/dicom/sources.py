"""Discovery of candidate files: a directory tree, a zip archive, or in-memory files.

Nothing here parses DICOM; it only enumerates byte sources, each of which can be opened more
than once (headers are read first, pixels only for the selected series). Limits protect the
service from archive bombs and runaway uploads.
"""

from __future__ import annotations

import io
import os
import zipfile
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
        200.0, gt=1, description="Largest uncompressed/compressed ratio of an archive member."
    )


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
    archive: Callable[[], zipfile.ZipFile], label: str, limits: InputLimits
) -> Iterator[DicomSource]:
    """Members of a zip, checked against the limits before anything is decompressed."""
    try:
        with archive() as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise NoDicomError(f"{label} is not a readable zip archive ({exc}).") from exc
    for info in infos:
        ratio = info.file_size / info.compress_size if info.compress_size else 1.0
        if ratio > limits.max_zip_ratio:
            raise InputLimitError(
                f"{label}: member {info.filename!r} expands {ratio:.0f}-fold (limit "
                f"{limits.max_zip_ratio:.0f}); refusing a possible zip bomb."
            )

        def opener(member: str = info.filename) -> BinaryIO:
            with archive() as zf:
                return io.BytesIO(zf.read(member))

        yield DicomSource(name=f"{label}:{info.filename}", size=info.file_size, opener=opener)


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
        yield from _zip_sources(lambda: zipfile.ZipFile(io.BytesIO(data)), name, limits)
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
        yield from _zip_sources(lambda: zipfile.ZipFile(path), path.name, limits)
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
        InputLimitError: too many files or bytes, or an archive member that expands too far.
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

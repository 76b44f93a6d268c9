"""Header-only series selection on the spooled files: what the gateway sends to Triton.

Only the selected series travels to the inference server; everything that can be refused from
headers (no CT, no axial series, too few slices, an undecodable transfer syntax, too many
slices) is refused here, before any pixel is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.pixels import get_decoder
from pydicom.uid import UID

from api.settings import Settings
from ich.dicom import InputLimitError, PixelDataError, Selection, scan, select
from ich.dicom.sources import DicomSource
from ich.schema import IngestionWarning


class UnsupportedTransferSyntaxError(PixelDataError):
    code = "unsupported-transfer-syntax"
    title = "Unsupported transfer syntax"


@dataclass(frozen=True)
class Intake:
    """The selected series' files and what selection noticed about the whole upload."""

    selection: Selection
    files: list[bytes]

    @property
    def warnings(self) -> tuple[IngestionWarning, ...]:
        return self.selection.warnings


def decodable(uid: str) -> bool:
    """Whether this installation can decode pixel data in transfer syntax ``uid``."""
    try:
        return bool(get_decoder(UID(uid)).is_available)
    except NotImplementedError:
        return False


def select_series(paths: Sequence[Path], settings: Settings) -> Intake:
    """Scan the headers, choose the series, check it can be decoded, read its files.

    Raises:
        DicomInputError: a subclass naming what is wrong with the upload.
    """
    selection = select(scan(list(paths), settings.input_limits))
    instances = selection.chosen.grid.instances
    if len(instances) > settings.max_slices:
        raise InputLimitError(
            f"The selected series has {len(instances)} images (limit {settings.max_slices})."
        )
    syntaxes = {i.transfer_syntax_uid for i in instances}
    refused = sorted(s for s in syntaxes if not decodable(s))
    if refused:
        names = ", ".join(f"{UID(s).name} ({s})" for s in refused)
        raise UnsupportedTransferSyntaxError(
            f"The series is encoded as {names}, which cannot be decoded here: send it "
            "uncompressed, or as JPEG, JPEG-LS, JPEG 2000 or RLE."
        )
    return Intake(selection, [s.read_bytes() for s in series_sources(selection)])


def series_sources(selection: Selection) -> list[DicomSource]:
    """The files of the selected series, each once (a multi-frame file holds many frames)."""
    return list({i.source.name: i.source for i in selection.chosen.grid.instances}.values())

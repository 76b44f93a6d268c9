"""What the Triton python steps compute, free of Triton and torch (testable in-process).

``preprocess``: the DICOM files of one request -> detector blocks and the series context.
``postprocess``: the detector's outputs and that context -> result JSON and label volume.
Both call the code ``ich analyze`` calls, so served and offline results are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ich.dicom import InputLimits, load
from ich.pipeline import SeriesContext, finish, prepare
from ich.postprocess import DetectorOutputs
from ich.preprocess import InputSpec, blocks
from ich.schema import OperatingPoint


@dataclass(frozen=True)
class Preprocessed:
    blocks: np.ndarray
    """float32 (blocks, windows, block planes + context - 1, size, size)."""
    context: bytes
    """:class:`SeriesContext` as JSON."""


def preprocess(
    files: Sequence[bytes],
    spec: InputSpec,
    block_planes: int,
    max_blocks: int,
    limits: InputLimits | None = None,
) -> Preprocessed:
    """Ingest the files (series selection included), fit the model grid, cut blocks.

    Raises:
        DicomInputError: a subclass naming what is wrong with the files.
        SeriesTooLongError: more model planes than one request may carry.
    """
    named = [(f"instance_{i:05d}", bytes(data)) for i, data in enumerate(files)]
    volume = load(named, limits=limits)
    prepared = prepare(volume, spec, max_planes=max_blocks * block_planes)
    cut = blocks(prepared.series, spec.context, block_planes)
    context = SeriesContext.of(volume, prepared)
    return Preprocessed(cut, context.model_dump_json().encode())


def postprocess(
    context: bytes, outputs: Sequence[np.ndarray], operating_point: OperatingPoint
) -> tuple[bytes, np.ndarray]:
    """(ExamResult JSON, uint8 label volume of the reported hemorrhages on the series' grid)."""
    series = SeriesContext.model_validate_json(context)
    found = DetectorOutputs.from_blocks(outputs, series.grid.planes)
    result, reported = finish(series, found, operating_point)
    return result.model_dump_json().encode(), reported

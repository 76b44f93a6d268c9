"""The analysis around the detector: volume -> model input, detector outputs -> exam result.

Torch-free, so the Triton preprocess and postprocess steps, ``ich analyze`` and evaluation run
the very same code on either side of the network. What the far side needs of the ingested
volume travels as a :class:`SeriesContext` (JSON, no pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict

from ich.dicom.volume import Volume
from ich.errors import IchError
from ich.postprocess import DetectorOutputs, detections_on_volume
from ich.preprocess import InputSpec, ModelGrid, model_input
from ich.preprocess.cavity import intracranial_cavity
from ich.preprocess.stored_window import StoredWindow
from ich.quantify import MeasurementGrid, instances_from_labels
from ich.quantify.exam import exam_result
from ich.quantify.instances import paint_detections
from ich.quantify.rle import decode_label_volume, encode_label_volume
from ich.schema import ExamResult, IngestionWarning, OperatingPoint


@dataclass(frozen=True)
class Prepared:
    """A volume ready for the detector."""

    grid: ModelGrid
    series: np.ndarray
    """float32 (windows, planes + context - 1, size, size), see :func:`model_input`."""
    cavity: np.ndarray
    """bool (planes, size, size): inside the skull, see :func:`intracranial_cavity`."""


class SeriesTooLongError(IchError):
    code = "series-too-long"
    title = "Series too long"


def prepare(volume: Volume, spec: InputSpec, max_planes: int | None = None) -> Prepared:
    """The model grid and input of ``volume``.

    Raises:
        SeriesTooLongError: more than ``max_planes`` model planes (checked before the
            input is built, so an oversized series costs no memory).
    """
    grid = ModelGrid.fit(volume.hu, volume.spacing_mm, spec)
    if max_planes is not None and grid.planes > max_planes:
        raise SeriesTooLongError(
            f"the series spans {grid.planes} model planes of {spec.slab_mm:g} mm; at most "
            f"{max_planes} are analysed at once: send a head CT, not a whole-body scan"
        )
    return prepared_on(grid, volume.hu)


def prepared_on(grid: ModelGrid, hu: np.ndarray) -> Prepared:
    """The detector input and the intracranial cavity of volume ``hu`` on ``grid``."""
    planes, spec = grid.hu_planes(hu), grid.spec
    ceiling = None if grid.window is None else grid.window.ceiling
    cavity = intracranial_cavity(planes, spec.pixel_mm, spec.slab_mm, ceiling)
    return Prepared(grid, model_input(planes, spec), cavity)


def windowed_warning(window: StoredWindow | None) -> tuple[IngestionWarning, ...]:
    """Say so when the series came clipped to a display window: what lies beyond it is lost."""
    if window is None:
        return ()
    return (
        IngestionWarning(
            code="windowed_series",
            message=f"The series was stored in a display window ({window.floor:g} to "
            f"{window.ceiling:g} HU): bone and air are flat in it and were restored as such "
            "before resampling. Blood against the skull is judged without the bone's own "
            "detail; send the original full-range series where there is one.",
        ),
    )


class SeriesContext(BaseModel):
    """Everything the postprocess needs of an ingested series besides its pixels: identity,
    measuring geometry, ingestion warnings, the model grid and the intracranial cavity on it
    (compressed, a few kB). Floats survive the JSON round trip exactly, so a served result
    equals the in-process one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    study_uid: str
    series_uid: str
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    affine: tuple[tuple[float, float, float, float], ...]
    plane_sop_instance_uids: tuple[str | None, ...]
    plane_frame_numbers: tuple[int | None, ...]
    warnings: tuple[IngestionWarning, ...]
    spec: InputSpec
    group: int
    scale: tuple[float, float]
    centre: tuple[float, float]
    cavity: str
    """:attr:`Prepared.cavity` as :func:`encode_label_volume` text."""

    @classmethod
    def of(cls, volume: Volume, prepared: Prepared) -> SeriesContext:
        geometry, grid = MeasurementGrid.of(volume), prepared.grid
        return cls(
            study_uid=volume.study_uid,
            series_uid=volume.series_uid,
            shape=geometry.shape,
            spacing_mm=geometry.spacing_mm,
            affine=tuple(tuple(float(v) for v in row) for row in geometry.affine),
            plane_sop_instance_uids=geometry.plane_sop_instance_uids,
            plane_frame_numbers=geometry.plane_frame_numbers,
            warnings=volume.warnings + windowed_warning(grid.window),
            spec=grid.spec,
            group=grid.group,
            scale=grid.scale,
            centre=grid.centre,
            cavity=encode_label_volume(prepared.cavity),
        )

    @property
    def geometry(self) -> MeasurementGrid:
        return MeasurementGrid(
            self.shape,
            self.spacing_mm,
            np.asarray(self.affine, dtype=float),
            self.plane_sop_instance_uids,
            self.plane_frame_numbers,
        )

    @property
    def grid(self) -> ModelGrid:
        return ModelGrid(self.spec, self.shape, self.group, self.scale, self.centre)

    @property
    def cavity_planes(self) -> np.ndarray:
        grid = self.grid
        shape = (grid.planes, self.spec.size, self.spec.size)
        return decode_label_volume(self.cavity, shape).astype(bool)


def finish(
    context: SeriesContext,
    outputs: DetectorOutputs,
    operating_point: OperatingPoint,
    masks: bool = True,
    label_volume: bool = False,
) -> tuple[ExamResult, np.ndarray]:
    """The exam result and its label volume (reported hemorrhages only) on the series' grid."""
    shape = context.shape
    found = detections_on_volume(context.grid, outputs, context.cavity_planes)
    label, score = paint_detections(found, shape)
    instances = instances_from_labels(label, score)
    reported = np.zeros(shape, dtype=np.uint8)
    for instance in instances:
        if operating_point.reports(instance.hemorrhage_class, instance.score):
            reported[instance.region][instance.mask] = instance.hemorrhage_class.label
    result = exam_result(
        context.study_uid,
        context.series_uid,
        instances,
        context.geometry,
        operating_point,
        warnings=context.warnings,
        masks=masks,
        label_volume=reported if label_volume else None,
    )
    return result, reported

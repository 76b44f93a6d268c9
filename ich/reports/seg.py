"""DICOM SEG of the reported hemorrhages, drawn on the source images as they were sent.

The analysis runs on a resampled grid (radiological orientation, gantry tilt undone); a PACS
shows the original images. Every grid plane that *is* a source image is written back onto
that image's frame through :meth:`ich.dicom.Volume.to_source_pixel`, so the overlay lines up
whatever the flips, transposition or tilt of the series. Interpolated planes have no source
image and are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

import ich
from ich.dicom import Volume
from ich.overlays import COLOURS
from ich.reports.common import (
    FINDING_SITES,
    HEMORRHAGE,
    LESION,
    MANUFACTURER,
    ReportInputError,
    check_sources,
    unverified_note,
    with_required_attributes,
)
from ich.schema import HemorrhageClass, ModelInfo

SEG_SERIES_NUMBER = 9901


def segment_descriptions(model: ModelInfo) -> list[hd.seg.SegmentDescription]:
    """One segment per class, numbered as the label volume (1 IPH, 2 EDH/SDH, 3 SAH), each
    made automatically by ``model`` and shown in the overlay's colour."""
    algorithm = hd.AlgorithmIdentificationSequence(
        name=model.name,
        family=codes.DCM.ArtificialIntelligence,
        version=model.version,
        source=MANUFACTURER,
        parameters={"weights_sha256": model.sha256} if model.sha256 else None,
    )
    return [
        hd.seg.SegmentDescription(
            segment_number=c.label,
            segment_label=c.value,
            segmented_property_category=LESION,
            segmented_property_type=HEMORRHAGE,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_id=c.value,
            tracking_uid=hd.UID(),
            anatomic_regions=[FINDING_SITES[c]],
            display_color=hd.color.CIELabColor.from_rgb(*(round(255 * v) for v in COLOURS[c])),
        )
        for c in HemorrhageClass
    ]


def _source_slices(volume: Volume, sources: Sequence[Dataset]) -> list[int | None]:
    """For each frame of ``sources`` (images in order, or the frames of one multi-frame
    image), the volume's source slice it is, or None if the volume did not use it."""
    check_sources(sources, volume.series_uid)
    slices = {
        key: s
        for s, key in enumerate(
            zip(volume.source_sop_instance_uids, volume.source_frame_numbers, strict=True)
        )
    }
    frames = int(getattr(sources[0], "NumberOfFrames", 1) or 1)
    if frames > 1 and len(sources) > 1:
        raise ReportInputError(
            "Give either single-frame source images or exactly one multi-frame image."
        )
    if frames > 1:
        found = [slices.get((sources[0].SOPInstanceUID, f)) for f in range(1, frames + 1)]
    else:
        found = [slices.get((ds.SOPInstanceUID, None)) for ds in sources]
    used = len({s for s in found if s is not None})
    if used != len(slices):
        raise ReportInputError(
            f"The source images hold {used} of the {len(slices)} slices of the analysed "
            "series; give all of them."
        )
    return found


def _first_plane(image: Dataset) -> hd.PlanePositionSequence:
    """The position of an image's first frame (single- or multi-frame)."""
    if "PerFrameFunctionalGroupsSequence" in image:
        position = image.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0]
    else:
        position = image
    return hd.PlanePositionSequence("PATIENT", position.ImagePositionPatient)


def _draw(
    volume: Volume, label: np.ndarray, slices: list[int | None], shape: tuple[int, int]
) -> np.ndarray:
    """``label`` on the source frames (frame, row, column), as the images were stored.

    ``slices`` gives each frame's source slice (see :func:`_source_slices`). Each grid plane
    that is a source slice goes through the affine map :meth:`Volume.to_source_pixel`
    describes (shear shift, flips, transposition); interpolated planes are skipped.
    """
    frame_of = {source: frame for frame, source in enumerate(slices) if source is not None}
    out = np.zeros((len(slices), *shape), dtype=np.uint8)
    drawn = label.reshape(len(label), -1).any(axis=1) & volume.plane_is_source
    for k in map(int, np.flatnonzero(drawn)):
        source, r0, c0 = volume.to_source_pixel(k, 0.0, 0.0)
        _, ri, ci = volume.to_source_pixel(k, 1.0, 0.0)
        _, rj, cj = volume.to_source_pixel(k, 0.0, 1.0)
        i, j = np.nonzero(label[k])
        r = np.rint(r0 + (ri - r0) * i + (rj - r0) * j).astype(np.int64)
        c = np.rint(c0 + (ci - c0) * i + (cj - c0) * j).astype(np.int64)
        inside = (r >= 0) & (r < shape[0]) & (c >= 0) & (c < shape[1])
        out[frame_of[source], r[inside], c[inside]] = label[k][i[inside], j[inside]]
    return out


def segmentation(
    volume: Volume,
    label: np.ndarray,
    sources: Sequence[Dataset],
    model: ModelInfo,
    series_number: int = SEG_SERIES_NUMBER,
) -> hd.seg.Segmentation:
    """A BINARY DICOM SEG of ``label`` (uint8 on ``volume``'s grid, values as
    :attr:`HemorrhageClass.label`) over the source images, marked as unverified machine output.

    ``sources`` are the analysed series' images as sent: single-frame images in any order, or
    its one multi-frame image. Headers suffice (``dcmread(..., stop_before_pixels=True)``).
    All three class segments are always described; a negative study still yields a valid SEG
    (one empty frame per segment, referencing every source image).

    Raises:
        ReportInputError: ``label`` is not on ``volume``'s grid, or ``sources`` are not the
            images of the analysed series.
    """
    if label.shape != volume.shape:
        raise ReportInputError(
            f"The label volume {label.shape} is not on the analysed grid {volume.shape}."
        )
    shape = (int(sources[0].Rows), int(sources[0].Columns))
    pixels = _draw(volume, label, _source_slices(volume, sources), shape)
    empty = not pixels.any()
    positions = None
    if empty:
        # Nothing to draw: one empty frame per segment (on the first frame's plane), not one
        # per image and segment; every source image is still referenced.
        pixels, positions = pixels[:1], [_first_plane(sources[0])]
    return hd.seg.Segmentation(
        source_images=with_required_attributes(sources),
        pixel_array=pixels,
        plane_positions=positions,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(model),
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=model.name,
        software_versions=(model.version, ich.__version__),
        device_serial_number=(model.sha256 or "unknown")[:16],
        omit_empty_frames=not empty,
        content_label="ICH_UNVERIFIED",
        content_description=unverified_note(model),
        series_description="ICH AI SEG (unverified)",
    )

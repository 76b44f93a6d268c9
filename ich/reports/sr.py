"""DICOM SR (TID 1500 Measurement Report) of an analysis: what a PACS or reporting system can
read without parsing JSON.

One measurement group per exam-level finding (any ICH, then each class: flagged present or
absent at the operating threshold, with its probability) and one per reported hemorrhage (its
volume in mL, ABC/2 for IPH). A hemorrhage's group points at its class's segment in the SEG,
on the frames it covers, when a SEG is given, else at the source images it lies on. The
document is marked unverified and preliminary: a device observer (the model) made it.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

import ich
from ich.reports.common import (
    FINDING_SITES,
    HEMORRHAGE,
    LESION,
    MANUFACTURER,
    ReportInputError,
    check_sources,
    device_uid,
    unverified_note,
    with_required_attributes,
)
from ich.schema import ExamResult, Hemorrhage, HemorrhageClass, ModelInfo

SR_SERIES_NUMBER = 9902
MILLILITRE = hd.sr.CodedConcept("ml", "UCUM", "milliliter")
PRESENT, ABSENT = codes.DCM.Present, codes.DCM.Absent

_Group = (
    hd.sr.MeasurementsAndQualitativeEvaluations
    | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
)


def _algorithm(model: ModelInfo, *parameters: str) -> hd.sr.AlgorithmIdentification:
    """The model as TID 4019 names it, with its weights' digest when known."""
    if model.sha256:
        parameters = (*parameters, f"weights sha256 {model.sha256}")
    return hd.sr.AlgorithmIdentification(
        name=model.name,
        version=model.version,
        parameters=list(parameters) or None,
        family=codes.DCM.ArtificialIntelligence,
        manufacturer=MANUFACTURER,
    )


def _exam_groups(result: ExamResult, model: ModelInfo) -> list[_Group]:
    """Any ICH and each class: present or absent (flagged at the threshold), probability."""
    findings: list[tuple[HemorrhageClass | None, float, bool, float]] = [
        (None, result.any_ich_probability, result.any_ich_flagged, result.any_ich_threshold),
        *((f.hemorrhage_class, f.probability, f.flagged, f.threshold) for f in result.classes),
    ]
    return [
        hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=hd.UID(), identifier=f"Exam: {'any ICH' if c is None else c.value}"
            ),
            finding_type=codes.SCT.IntracranialHemorrhage if c is None else HEMORRHAGE,
            finding_sites=None if c is None else [hd.sr.FindingSite(FINDING_SITES[c])],
            algorithm_id=_algorithm(model, f"operating threshold {threshold:g}"),
            qualitative_evaluations=[
                hd.sr.QualitativeEvaluation(
                    codes.DCM.PresenceOfProperty, PRESENT if flagged else ABSENT
                )
            ],
            measurements=[
                hd.sr.Measurement(
                    name=codes.DCM.Probability, value=probability, unit=codes.UCUM.NoUnits
                )
            ],
        )
        for c, probability, flagged, threshold in findings
    ]


def _volumes(hemorrhage: Hemorrhage) -> list[hd.sr.Measurement]:
    """Its volume (sum of voxels) and, for IPH, the ABC/2 estimate (an ellipsoid's LWH)."""
    volumes = [
        hd.sr.Measurement(
            name=codes.SCT.Volume,
            value=hemorrhage.volume_ml,
            unit=MILLILITRE,
            method=codes.DCM.SumOfSegmentedVoxelMethodForVolume,
        )
    ]
    if hemorrhage.abc2_ml is not None:
        volumes.append(
            hd.sr.Measurement(
                name=codes.SCT.Volume,
                value=hemorrhage.abc2_ml,
                unit=MILLILITRE,
                method=codes.DCM.LWHMethodForVolumeOfEllipsoid,
            )
        )
    return volumes


def _frames_of_segments(seg: Dataset) -> dict[int, dict[tuple[str, int | None], int]]:
    """Per segment number, its SEG frame (1-based) on each source (SOP UID, frame number)."""
    frames: dict[int, dict[tuple[str, int | None], int]] = {}
    for number, item in enumerate(seg.PerFrameFunctionalGroupsSequence, start=1):
        segment = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        mine = frames.setdefault(segment, {})
        for derivation in item.get("DerivationImageSequence", []):
            for source in derivation.get("SourceImageSequence", []):
                frame = source.get("ReferencedFrameNumber")
                key = (source.ReferencedSOPInstanceUID, None if frame is None else int(frame))
                mine[key] = number
    return frames


def _planes(hemorrhage: Hemorrhage) -> set[tuple[str, int | None]]:
    """The source images (SOP UID, frame) its masks lie on (interpolated planes have none)."""
    return {
        (m.sop_instance_uid, m.frame_number)
        for m in hemorrhage.masks
        if m.sop_instance_uid is not None
    }


def _hemorrhage_group(
    hemorrhage: Hemorrhage,
    model: ModelInfo,
    sources: Sequence[Dataset],
    seg: Dataset | None,
    seg_frames: dict[int, dict[tuple[str, int | None], int]],
) -> _Group:
    """One hemorrhage: volumes, class as finding site, and where it is (SEG or images)."""
    c = hemorrhage.hemorrhage_class
    common = {
        "tracking_identifier": hd.sr.TrackingIdentifier(
            uid=hd.UID(), identifier=f"Hemorrhage {hemorrhage.id} ({c.value})"
        ),
        "finding_type": HEMORRHAGE,
        "finding_category": LESION,
        "finding_sites": [hd.sr.FindingSite(FINDING_SITES[c])],
        "algorithm_id": _algorithm(model),
        "measurements": _volumes(hemorrhage),
    }
    planes = _planes(hemorrhage)
    segment = seg_frames.get(c.label, {})
    if seg is not None and segment:
        # The class's segment holds every hemorrhage of the class: point at this one's frames.
        frames = sorted(n for key, n in segment.items() if key in planes)
        return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            referenced_segment=hd.sr.ReferencedSegment.from_segmentation(
                seg, segment_number=c.label, frame_numbers=frames or None
            ),
            **common,
        )
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        source_images=_source_images(sources, planes), **common
    )


def _source_images(
    sources: Sequence[Dataset], planes: set[tuple[str, int | None]]
) -> list[hd.sr.SourceImageForMeasurementGroup]:
    """The source images (and frames) a hemorrhage lies on; all of them if unknown."""
    uids = {uid for uid, _ in planes}
    return [
        hd.sr.SourceImageForMeasurementGroup.from_source_image(
            ds,
            sorted(f for uid, f in planes if uid == ds.SOPInstanceUID and f is not None) or None,
        )
        for ds in sources
        if not uids or ds.SOPInstanceUID in uids
    ]


def measurement_report(
    result: ExamResult,
    sources: Sequence[Dataset],
    model: ModelInfo,
    seg: Dataset | None = None,
    series_number: int = SR_SERIES_NUMBER,
) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 Measurement Report of ``result``, marked unverified and preliminary.

    ``sources`` are the analysed series' images (headers suffice); ``seg`` is the SEG made
    from the same result by :func:`ich.reports.segmentation`, if one was made (it must then be
    stored too, as the SR refers to it). A negative study yields the exam-level groups only.

    Raises:
        ReportInputError: ``sources`` (or ``seg``) are not of the analysed series.
    """
    check_sources(sources, result.series_uid)
    if seg is not None and not any(
        item.SeriesInstanceUID == result.series_uid
        for item in seg.get("ReferencedSeriesSequence", [])
    ):
        raise ReportInputError("The segmentation is not of the analysed series.")
    seg_frames = {} if seg is None else _frames_of_segments(seg)
    groups = _exam_groups(result, model) + [
        _hemorrhage_group(h, model, sources, seg, seg_frames) for h in result.hemorrhages
    ]
    observer = hd.sr.ObserverContext(
        observer_type=codes.cid270.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_uid(model),
            name=unverified_note(model),
            manufacturer_name=MANUFACTURER,
            model_name=model.name,
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.SCT.ComputedTomographyOfHead,
        imaging_measurements=groups,
    )
    evidence = with_required_attributes(sources) + ([] if seg is None else [seg])
    return hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report[0],
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description="ICH AI SR (unverified)",
        software_versions=(model.version, ich.__version__),
    )

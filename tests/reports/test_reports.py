"""DICOM SEG and SR of an analysis, and the per-plane PNG overlay.

A synthetic study with ground truth stands in for an analysis: its label volume is the
reported blood. The same series is also sent transposed, mirrored and rotated (same pixels,
other in-plane orientation), so the SEG must find its way back to each image as stored.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from io import BytesIO

import highdicom as hd
import numpy as np
import pydicom
import pytest
from ellipsoid_head import Ellipsoid
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

from ich.dicom import Volume, load
from ich.phantom.dataset import truth_on_volume
from ich.phantom.generate import CaseOptions, synthesize
from ich.phantom.lesions import Kind, LesionSpec
from ich.phantom.series_writer import SeriesSpec, encode_series, render, to_bytes
from ich.quantify import MeasurementGrid, exam_result, instances_from_labels
from ich.reports import ReportInputError, measurement_report, overlay_png, segmentation
from ich.schema import ExamResult, HemorrhageClass, ModelInfo, OperatingPoint

MODEL = ModelInfo(name="ich-hybrid-maskrcnn", version="1.4.2", sha256="0f" * 32)
POINT = OperatingPoint(thresholds={c: 0.5 for c in HemorrhageClass}, any_ich=0.5, source="test")


@dataclass(frozen=True)
class Sent:
    """One encoding of the study: its volume, header-only datasets and the truth as stored."""

    volume: Volume
    headers: list[Dataset]
    truth: np.ndarray
    """Ground-truth label (slice, row, column) of each dataset, in ``headers`` order."""


@dataclass(frozen=True)
class Study:
    label: np.ndarray
    """The ground truth on the analysed grid: the reported blood."""
    result: ExamResult
    encodings: dict[str, Sent]


def _reoriented(ds: Dataset, transpose: bool, flip_rows: bool, flip_columns: bool) -> Dataset:
    """The same image stored transposed, then mirrored: pixels and geometry change together."""
    ds = copy.deepcopy(ds)
    rows, columns = int(ds.Rows), int(ds.Columns)
    pixels = np.frombuffer(ds.PixelData, dtype=np.int16).reshape(rows, columns)
    along_row = np.asarray(ds.ImageOrientationPatient[:3], float)  # column index direction
    along_col = np.asarray(ds.ImageOrientationPatient[3:], float)  # row index direction
    row_mm, col_mm = (float(v) for v in ds.PixelSpacing)  # between rows, between columns
    origin = np.asarray(ds.ImagePositionPatient, float)
    if transpose:
        pixels = pixels.T
        along_row, along_col, row_mm, col_mm = along_col, along_row, col_mm, row_mm
    if flip_rows:
        pixels = pixels[::-1]
        origin = origin + (pixels.shape[0] - 1) * row_mm * along_col
        along_col = -along_col
    if flip_columns:
        pixels = pixels[:, ::-1]
        origin = origin + (pixels.shape[1] - 1) * col_mm * along_row
        along_row = -along_row
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelSpacing = [f"{row_mm:.6f}", f"{col_mm:.6f}"]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*along_row, *along_col)]
    ds.ImagePositionPatient = [f"{v:.4f}" for v in origin]
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds


def _stored(truth: np.ndarray, transpose: bool, flip_rows: bool, flip_columns: bool) -> np.ndarray:
    truth = truth.transpose(0, 2, 1) if transpose else truth
    truth = truth[:, ::-1] if flip_rows else truth
    return truth[:, :, ::-1] if flip_columns else truth


def _send(datasets: list[Dataset]) -> tuple[Volume, list[Dataset]]:
    """What the gateway has: the decoded volume and the headers of the spooled files."""
    files = [to_bytes(ds) for ds in datasets]
    headers = [pydicom.dcmread(BytesIO(f), stop_before_pixels=True) for f in files]
    return load(files), headers


ORIENTATIONS = {
    "as acquired": (False, False, False),
    "transposed": (True, False, False),
    "mirrored": (False, True, True),
    "rotated": (True, True, False),
}
"""How each encoding stores the image: (transpose, then flip rows, flip columns)."""
UNDONE = {
    "as acquired": (False, False, False),
    "transposed": (True, False, False),
    "mirrored": (False, True, True),
    "rotated": (True, False, True),
}
"""How ingestion undoes it: transposed first, then flipped (rows became columns)."""


@pytest.fixture(scope="module")
def analysed() -> Study:
    lesions = (
        LesionSpec(Kind.IPH, 8.0, "medium", "lobar"),
        LesionSpec(Kind.SDH, 10.0, "medium", "convexity"),
        LesionSpec(Kind.SAH, 2.0, "small", "sylvian"),
    )
    case = synthesize(1, 0, CaseOptions(lesions=lesions, matrix=128, gantry_tilt_deg=0.0))
    spec = replace(case.spec, transfer_syntax=ExplicitVRLittleEndian)
    datasets = encode_series(case.hu, spec, case.study)
    encodings = {}
    for name, how in ORIENTATIONS.items():
        volume, headers = _send([_reoriented(ds, *how) for ds in datasets])
        encodings[name] = Sent(volume, headers, _stored(case.label, *how))
    reference = encodings["as acquired"].volume
    assert reference.plane_is_source.all() and reference.shape == case.label.shape
    score = np.where(case.label > 0, 0.9, 0.0)
    result = exam_result(
        reference.study_uid,
        reference.series_uid,
        instances_from_labels(case.label, score),
        MeasurementGrid.of(reference),
        POINT,
    )
    assert {h.hemorrhage_class for h in result.hemorrhages} == set(HemorrhageClass)
    return Study(case.label, result, encodings)


def _written(dataset: Dataset) -> bytes:
    """The dataset as a Part 10 file, as the gateway stores it."""
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _reread(dataset: Dataset) -> Dataset:
    return pydicom.dcmread(BytesIO(_written(dataset)))


def _seg(dataset: Dataset) -> hd.seg.Segmentation:
    return hd.seg.segread(BytesIO(_written(dataset)))


def _sr(dataset: Dataset) -> hd.sr.Comprehensive3DSR:
    return hd.sr.srread(BytesIO(_written(dataset)))


def _per_source(seg: hd.seg.Segmentation, headers: list[Dataset]) -> np.ndarray:
    """The SEG as a label map on each source image, in ``headers`` order."""
    return seg.get_pixels_by_source_instance(
        [ds.SOPInstanceUID for ds in headers],
        segment_numbers=[c.label for c in HemorrhageClass],
        combine_segments=True,
        assert_missing_frames_are_empty=True,
    )


@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
def test_seg_draws_the_label_on_every_source_image_as_stored(
    analysed: Study, orientation: str
) -> None:
    sent = analysed.encodings[orientation]
    volume = sent.volume
    flags = (volume.transposed, volume.flipped_rows, volume.flipped_columns)
    assert flags == UNDONE[orientation]
    # Same pixels, another storage: ingestion must give the same grid, so the same label.
    assert np.array_equal(volume.hu, analysed.encodings["as acquired"].volume.hu)

    seg = _seg(segmentation(volume, analysed.label, sent.headers, MODEL))

    np.testing.assert_array_equal(_per_source(seg, sent.headers), sent.truth)
    assert {uid for _, _, uid in seg.get_source_image_uids()} == {
        ds.SOPInstanceUID for ds in sent.headers
    }


def test_seg_describes_three_automatic_segments_and_says_it_is_unverified(analysed: Study) -> None:
    sent = analysed.encodings["as acquired"]
    seg = _reread(segmentation(sent.volume, analysed.label, sent.headers, MODEL))
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == sent.volume.study_uid
    assert seg.PatientID == sent.headers[0].PatientID
    assert "unverified" in seg.SeriesDescription.lower()
    assert "unverified" in seg.ContentDescription.lower()
    assert MODEL.name in seg.ContentDescription and MODEL.version in seg.ContentDescription
    segments = seg.SegmentSequence
    assert [s.SegmentLabel for s in segments] == ["IPH", "EDH/SDH", "SAH"]
    for segment in segments:
        assert segment.SegmentAlgorithmType == "AUTOMATIC"
        assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
        assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "50960005"
        algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == (
            MODEL.name,
            MODEL.version,
        )


def test_seg_leaves_out_interpolated_planes(analysed: Study) -> None:
    sent = analysed.encodings["rotated"]
    k = int(np.argmax(analysed.label.reshape(len(analysed.label), -1).sum(axis=1)))
    is_source = sent.volume.plane_is_source.copy()
    is_source[k] = False
    volume = replace(sent.volume, plane_is_source=is_source)
    seg = _seg(segmentation(volume, analysed.label, sent.headers, MODEL))
    expected = sent.truth.copy()
    expected[int(volume.plane_source[k])] = 0
    assert sent.truth[int(volume.plane_source[k])].any()
    np.testing.assert_array_equal(_per_source(seg, sent.headers), expected)


def test_seg_of_a_multiframe_image_refers_to_its_frames(
    enhanced: Callable[..., Dataset], bleed: Ellipsoid
) -> None:
    geometry = {"slices": 12, "matrix": 96, "pixel_spacing_mm": 2.4, "first_z_mm": -25.0}
    image = enhanced(**geometry)
    volume, (header,) = _send([image])
    inside = render(
        lambda points: bleed.contains(points).astype(np.float32), SeriesSpec(**geometry)
    )
    truth = (inside > 0).astype(np.uint8)  # as IPH
    assert truth.any() and volume.source_frame_numbers[0] == 1 and volume.plane_is_source.all()

    seg = _seg(segmentation(volume, truth, [header], MODEL))

    masks = seg.get_pixels_by_source_frame(
        header.SOPInstanceUID,
        list(range(1, int(image.NumberOfFrames) + 1)),
        segment_numbers=[c.label for c in HemorrhageClass],
        combine_segments=True,
        assert_missing_frames_are_empty=True,
    )
    np.testing.assert_array_equal(masks, truth)


def test_seg_undoes_the_tilt_shear(series: Callable[..., list[Dataset]], bleed: Ellipsoid) -> None:
    geometry = {"slices": 12, "matrix": 96, "pixel_spacing_mm": 2.4, "first_z_mm": -25.0}
    volume, headers = _send(series(tilt_deg=17.0, **geometry))
    spec = SeriesSpec(**geometry, tilt_deg=17.0)
    truth = render(lambda points: bleed.contains(points).astype(np.float32), spec) > 0
    truth = truth.astype(np.uint8)
    shifts = volume.source_shifts_px[:, 0]
    assert np.ptp(shifts) > 3 and not np.allclose(shifts, np.rint(shifts))  # sub-pixel shear
    label = truth_on_volume(truth, volume)  # the bleed on the analysed (unsheared) grid
    expected = truth.copy()
    expected[np.setdiff1d(np.arange(len(truth)), volume.plane_source[volume.plane_is_source])] = 0
    assert expected.any()

    seg = _seg(segmentation(volume, label, headers, MODEL))

    np.testing.assert_array_equal(_per_source(seg, headers), expected)


def test_sr_reports_each_hemorrhage_volume_on_its_segment(analysed: Study) -> None:
    sent = analysed.encodings["mirrored"]
    seg = _reread(segmentation(sent.volume, analysed.label, sent.headers, MODEL))
    sr = _sr(measurement_report(analysed.result, sent.headers, MODEL, seg))

    assert sr.VerificationFlag == "UNVERIFIED" and sr.PreliminaryFlag == "PRELIMINARY"
    assert "unverified" in sr.SeriesDescription.lower()
    report = sr.content
    (observer,) = report.get_observer_contexts()
    assert observer.observer_type == codes.DCM.Device
    name = observer.observer_identifying_attributes.name
    assert "unverified" in name.lower() and MODEL.name in name

    groups = report.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(analysed.result.hemorrhages)
    frames_of = {
        i + 1: int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        for i, f in enumerate(seg.PerFrameFunctionalGroupsSequence)
    }
    for group, hemorrhage in zip(groups, analysed.result.hemorrhages, strict=True):
        assert group.finding_type == codes.SCT.Hemorrhage
        assert f"({hemorrhage.hemorrhage_class.value})" in group.tracking_identifier
        volumes = {
            m.method.meaning: m.value
            for m in group.get_measurements(name=codes.SCT.Volume)
            if m.unit.value == "ml"
        }
        assert volumes["Sum of segmented voxel method for volume"] == pytest.approx(
            hemorrhage.volume_ml
        )
        if hemorrhage.hemorrhage_class is HemorrhageClass.IPH:
            assert volumes["LWH method for volume of ellipsoid"] == pytest.approx(
                hemorrhage.abc2_ml
            )
        segment = group.referenced_segment
        assert segment.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert segment.referenced_segment_numbers == [hemorrhage.hemorrhage_class.label]
        assert {frames_of[f] for f in segment.referenced_frame_numbers} == {
            hemorrhage.hemorrhage_class.label
        }

    exam = {g.tracking_identifier: g for g in report.get_image_measurement_groups()}
    assert set(exam) == {"Exam: any ICH", "Exam: IPH", "Exam: EDH/SDH", "Exam: SAH"}
    for finding in analysed.result.classes:
        group = exam[f"Exam: {finding.hemorrhage_class.value}"]
        (evaluation,) = group.get_qualitative_evaluations(codes.DCM.PresenceOfProperty)
        assert evaluation.value == (codes.DCM.Present if finding.flagged else codes.DCM.Absent)
        (probability,) = group.get_measurements(name=codes.DCM.Probability)
        assert probability.value == pytest.approx(finding.probability)


def test_sr_without_a_seg_refers_to_the_images_each_hemorrhage_lies_on(analysed: Study) -> None:
    sent = analysed.encodings["as acquired"]
    sr = _sr(measurement_report(analysed.result, sent.headers, MODEL))
    groups = [
        g
        for g in sr.content.get_image_measurement_groups()
        if g.tracking_identifier.startswith("Hemorrhage")
    ]
    assert len(groups) == len(analysed.result.hemorrhages)
    for group, hemorrhage in zip(groups, analysed.result.hemorrhages, strict=True):
        (volume,) = [
            m
            for m in group.get_measurements(name=codes.SCT.Volume)
            if m.method == codes.DCM.SumOfSegmentedVoxelMethodForVolume
        ]
        assert volume.value == pytest.approx(hemorrhage.volume_ml)
        assert {i.referenced_sop_instance_uid for i in group.source_images} == {
            m.sop_instance_uid for m in hemorrhage.masks
        }


def test_a_negative_study_still_gives_a_valid_seg_and_sr(analysed: Study) -> None:
    sent = analysed.encodings["transposed"]
    empty = np.zeros_like(analysed.label)
    result = exam_result(
        sent.volume.study_uid, sent.volume.series_uid, [], MeasurementGrid.of(sent.volume), POINT
    )
    seg = _reread(segmentation(sent.volume, empty, sent.headers, MODEL))
    assert len(seg.SegmentSequence) == 3 and seg.NumberOfFrames == 3
    parsed = hd.seg.Segmentation.from_dataset(seg)
    assert not _per_source(parsed, sent.headers).any()
    assert len(parsed.get_source_image_uids()) == len(sent.headers)

    sr = _sr(measurement_report(result, sent.headers, MODEL, seg))
    assert not sr.content.get_volumetric_roi_measurement_groups()
    evaluations = [
        g.get_qualitative_evaluations(codes.DCM.PresenceOfProperty)[0].value
        for g in sr.content.get_image_measurement_groups()
    ]
    assert evaluations == [codes.DCM.Absent] * 4


def test_images_without_a_frame_of_reference_still_get_a_seg_and_sr(analysed: Study) -> None:
    """Anonymised exports (CQ500 among them) drop the Frame of Reference UID, which a CT SEG
    needs: one is derived from the series, the same each time."""
    sent = analysed.encodings["as acquired"]
    headers = [copy.deepcopy(h) for h in sent.headers]
    for header in headers:
        del header.FrameOfReferenceUID
    seg = _reread(segmentation(sent.volume, analysed.label, headers, MODEL))
    sr = measurement_report(analysed.result, headers, MODEL, seg)
    assert (
        seg.FrameOfReferenceUID
        == segmentation(sent.volume, analysed.label, headers, MODEL).FrameOfReferenceUID
    )
    assert _per_source(hd.seg.Segmentation.from_dataset(seg), headers).any()
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    assert {r.SeriesInstanceUID for r in evidence} >= {headers[0].SeriesInstanceUID}
    assert all("FrameOfReferenceUID" not in h for h in headers)  # the callers' copies kept


def test_reports_refuse_inputs_that_do_not_belong_together(analysed: Study) -> None:
    sent = analysed.encodings["as acquired"]
    with pytest.raises(ReportInputError, match="not on the analysed grid"):
        segmentation(sent.volume, analysed.label[1:], sent.headers, MODEL)
    with pytest.raises(ReportInputError, match="give all of them"):
        segmentation(sent.volume, analysed.label, sent.headers[1:], MODEL)
    stranger = Dataset(dict(sent.headers[0].items()))
    stranger.SeriesInstanceUID = "1.2.3.4"
    with pytest.raises(ReportInputError, match="not all of the analysed series"):
        measurement_report(analysed.result, [*sent.headers, stranger], MODEL)
    assert ReportInputError.code == "report-input-mismatch"


def _png(data: bytes) -> np.ndarray:
    assert data.startswith(b"\x89PNG")
    return np.asarray(Image.open(BytesIO(data)).convert("RGB")).astype(int)


@pytest.mark.parametrize("boxes", ["detections", "hemorrhages"])
def test_overlay_png_tints_blood_by_class_and_boxes_it(analysed: Study, boxes: str) -> None:
    volume = analysed.encodings["as acquired"].volume
    result = analysed.result
    if boxes == "hemorrhages":
        result = result.model_copy(update={"detections": []})
    iph = next(h for h in result.hemorrhages if h.hemorrhage_class is HemorrhageClass.IPH)
    blood = analysed.label == HemorrhageClass.IPH.label
    k = int(np.argmax(blood.sum(axis=(1, 2))))
    assert iph.bbox_voxels[0] <= k < iph.bbox_voxels[3]

    image = _png(overlay_png(volume.hu[k], analysed.label[k], result, k))

    assert image.shape == (*volume.shape[1:], 3)
    red = image[blood[k]]
    assert (red[:, 0] > red[:, 1] + 40).all()  # IPH is tinted red
    rows, cols = np.nonzero(blood[k])
    outline = image[rows.min() - 1, cols.min() : cols.max() + 1]
    assert (outline == (255, 38, 38)).all(axis=1).mean() > 0.8  # the IPH box, just outside
    below = np.zeros(blood[k].shape, dtype=bool)
    below[np.nonzero(analysed.label[k])[0].max() + 16 :] = True  # under every box and caption
    level, width = 40.0, 80.0
    window = np.clip((volume.hu[k][below] - (level - width / 2)) / width, 0, 1)
    np.testing.assert_array_equal(image[below], np.rint(255 * window)[:, None].repeat(3, axis=1))

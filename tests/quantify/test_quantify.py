"""Quantification: strata, RLE, 3D instances, volumes of analytic shapes, ABC/2, exam result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ellipsoid_head import BLOOD, Ellipsoid, EllipsoidHead

from ich.dicom import load
from ich.phantom.series_writer import SeriesSpec, StudyInfo, to_bytes, write_series
from ich.quantify import (
    Detection,
    MeasurementGrid,
    abc2_ml,
    decode_label_volume,
    decode_rle,
    encode_rle,
    exam_result,
    instances_from_detections,
    instances_from_labels,
    measure,
    stratum_of,
)
from ich.schema import ExamResult, HemorrhageClass, OperatingPoint, SizeStratum

IPH, EDH_SDH, SAH = HemorrhageClass


@pytest.mark.parametrize(
    ("volume", "stratum"),
    [
        (0.0, SizeStratum.PUNCTATE),
        (0.00999, SizeStratum.PUNCTATE),
        (0.01, SizeStratum.SMALL),
        (5.0, SizeStratum.SMALL),
        (5.0001, SizeStratum.MEDIUM),
        (25.0, SizeStratum.MEDIUM),
        (25.0001, SizeStratum.LARGE),
        (300.0, SizeStratum.LARGE),
    ],
)
def test_strata_are_table_1(volume: float, stratum: SizeStratum) -> None:
    assert stratum_of(volume) is stratum


def test_rle_round_trips() -> None:
    rng = np.random.default_rng(0)
    for mask in (
        rng.random((7, 9)) > 0.5,
        np.zeros((4, 5), bool),
        np.ones((4, 5), bool),
        np.eye(6, dtype=bool),
    ):
        runs = encode_rle(mask)
        assert sum(runs) == mask.size
        np.testing.assert_array_equal(decode_rle(runs, mask.shape), mask)
    assert encode_rle(np.array([[1, 1, 0]], bool)) == [0, 2, 1]
    with pytest.raises(ValueError, match="sum to 3"):
        decode_rle([1, 2], (2, 2))


def _grid(spacing: tuple[float, float, float], shape: tuple[int, int, int]) -> tuple:
    """Voxel-centre coordinates (mm, centred) and the geometry of an axis-aligned grid."""
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing, strict=True)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    affine = np.eye(4)
    affine[0, 2], affine[1, 1], affine[2, 0] = spacing[2], spacing[1], spacing[0]
    return (z, y, x), MeasurementGrid(shape, spacing, affine)


def _sphere(z, y, x, r):
    return z * z + y * y + x * x <= r * r


def _ellipsoid(z, y, x, a=22.0, b=14.0, c=11.0):
    return (x / a) ** 2 + (y / b) ** 2 + (z / c) ** 2 <= 1


def _lens(z, y, x, R=60.0, h=9.0):  # noqa: N803
    """A biconvex lens (EDH-like): two spherical caps of radius R, total thickness 2h."""
    d = R - h
    return (x * x + y * y + (z - d) ** 2 <= R * R) & (x * x + y * y + (z + d) ** 2 <= R * R)


TRUE_ML = {
    "sphere": 4 / 3 * np.pi * 18.0**3 / 1000,
    "ellipsoid": 4 / 3 * np.pi * 22 * 14 * 11 / 1000,
    "lens": 2 * np.pi * 9.0**2 * (3 * 60.0 - 9.0) / 3 / 1000,
}
SHAPES = {
    "sphere": lambda z, y, x: _sphere(z, y, x, 18.0),
    "ellipsoid": _ellipsoid,
    "lens": _lens,
}


@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize(
    "spacing", [(5.0, 0.45, 0.45), (2.5, 0.5, 0.5), (0.625, 0.45, 0.45), (5.0, 0.9, 0.9)]
)
def test_volumes_of_analytic_shapes_within_2_percent(
    name: str, spacing: tuple[float, float, float]
) -> None:
    extent = 70.0
    shape = tuple(int(extent / s) | 1 for s in spacing)
    # The lens stands upright (thin along x), as an EDH against the side of the skull.
    (z, y, x), geometry = _grid(spacing, shape)  # type: ignore[arg-type]
    inside = SHAPES[name](x, y, z) if name == "lens" else SHAPES[name](z, y, x)
    (instance,) = instances_from_labels(inside.astype(np.uint8))
    found = measure(instance, geometry, 1)
    assert found.volume_ml == pytest.approx(TRUE_ML[name], rel=0.02)
    assert found.stratum is stratum_of(found.volume_ml)


def test_volume_of_a_bleed_through_gantry_tilt_correction(tmp_path: Path) -> None:
    """Rendered as a scanner would with 20 degrees of tilt, ingested, segmented, measured."""
    bleed = Ellipsoid(centre=(20.0, 10.0, 12.0), radii=(16.0, 13.0, 11.0), hu=BLOOD)
    head = EllipsoidHead(bleeds=(bleed,))
    spec = SeriesSpec(
        slices=40, matrix=256, pixel_spacing_mm=0.8, table_increment_mm=2.5, first_z_mm=-40.0,
        tilt_deg=20.0,
    )  # fmt: skip
    for index, ds in enumerate(write_series(head, spec, StudyInfo())):
        (tmp_path / f"{index}.dcm").write_bytes(to_bytes(ds))
    volume = load(tmp_path)
    assert "gantry_tilt_corrected" in {w.code for w in volume.warnings}
    label = ((volume.hu > 49) & (volume.hu < 200)).astype(np.uint8)
    largest = instances_from_labels(label)[0]  # thin rims at the skull are also in range
    found = measure(largest, MeasurementGrid.of(volume), 1)
    assert found.volume_ml == pytest.approx(bleed.volume_ml(), rel=0.02)
    assert np.allclose(found.centroid_lps_mm, bleed.centre, atol=1.0)
    assert found.masks[0].sop_instance_uid in volume.source_sop_instance_uids


@pytest.mark.parametrize("spacing", [(0.625, 0.45, 0.45), (1.0, 0.45, 0.45), (1.25, 0.5, 0.5)])
def test_abc2_of_an_ellipsoid(spacing: tuple[float, float, float]) -> None:
    """On thin slices; on 5 mm slices C counts up to one slice too many, as at the bedside."""
    shape = tuple(int(70.0 / s) | 1 for s in spacing)
    (z, y, x), _ = _grid(spacing, shape)  # type: ignore[arg-type]
    mask = _ellipsoid(z, y, x, a=20.0, b=14.0, c=15.0)
    true_ml = 4 / 3 * np.pi * 20 * 14 * 15 / 1000
    assert abc2_ml(mask, spacing, craniocaudal="extent") == pytest.approx(true_ml, rel=0.05)
    # Kothari's slice weighting counts an ellipsoid's height as about 0.68 of it.
    kothari = abc2_ml(mask, spacing)
    assert kothari == pytest.approx(true_ml * 3 / np.pi * 0.683, rel=0.08)


def _disk(shape: tuple[int, int], centre: tuple[int, int], r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= r * r


def test_detections_join_across_planes_and_higher_score_wins() -> None:
    shape = (6, 40, 40)
    blob = _disk(shape[1:], (10, 10), 4)
    detections = [Detection(k, IPH, 0.9 - 0.1 * k, blob) for k in range(1, 4)]
    # An SAH detection overlapping the IPH on plane 2 with a higher score takes those pixels.
    shifted = _disk(shape[1:], (10, 14), 4)
    detections.append(Detection(2, SAH, 0.95, shifted))
    # A diagonal neighbour on the next plane joins (26-connectivity); a far one does not.
    corner = np.zeros(shape[1:], bool)
    corner[15, 11] = True  # touches plane 3's disk only through a corner: (14, 10)
    detections.append(Detection(4, IPH, 0.5, corner))
    detections.append(Detection(4, EDH_SDH, 0.4, _disk(shape[1:], (33, 33), 3)))
    detections.append(Detection(5, EDH_SDH, 0.05, _disk(shape[1:], (33, 33), 3)))
    found = instances_from_detections(detections, shape, min_score=0.1)
    classes = [i.hemorrhage_class for i in found]
    assert classes == [IPH, EDH_SDH, SAH]
    iph, sdh, sah = found
    assert iph.score == pytest.approx(0.8) and iph.region[0] == slice(1, 5)
    assert sah.score == pytest.approx(0.95) and sah.voxels == int(shifted.sum())
    assert sdh.region[0] == slice(4, 5)  # the 0.05 detection was below min_score
    with pytest.raises(ValueError, match="does not match"):
        instances_from_detections([Detection(0, IPH, 0.9, blob[:10])], shape)


def test_exam_result_flags_and_totals_and_masks() -> None:
    shape = (8, 32, 32)
    label = np.zeros(shape, np.uint8)
    label[2:5, 5:12, 5:12] = IPH.label
    label[3:4, 20:30, 20:22] = SAH.label
    score = np.where(label == IPH.label, 0.97, np.where(label == SAH.label, 0.4, 0.0))
    geometry = MeasurementGrid(shape, (5.0, 0.5, 0.5), np.eye(4) * [0.5, 0.5, 5.0, 1])
    point = OperatingPoint(
        thresholds={IPH: 0.5, EDH_SDH: 0.5, SAH: 0.6}, any_ich=0.5, source="test"
    )
    result = exam_result("1.2", "1.2.3", instances_from_labels(label, score), geometry, point)
    by_class = {f.hemorrhage_class: f for f in result.classes}
    assert by_class[IPH].flagged and not by_class[SAH].flagged and not by_class[EDH_SDH].flagged
    # The SAH scored under its threshold: flagged no, and so neither listed nor measured.
    assert by_class[SAH].count == 0 and by_class[SAH].total_volume_ml == 0
    assert by_class[SAH].probability == pytest.approx(0.4)
    assert [h.hemorrhage_class for h in result.hemorrhages] == [IPH]
    assert by_class[IPH].total_volume_ml == pytest.approx(3 * 49 * 1.25 / 1000, rel=1e-3)
    assert result.any_ich_flagged and result.any_ich_probability == pytest.approx(0.97)
    iph = result.hemorrhages[0]
    assert iph.bbox_voxels == (2, 5, 5, 5, 12, 12) and iph.slices == 3
    assert iph.extent_mm == (15.0, 3.5, 3.5) and iph.abc2_ml is not None
    rebuilt = np.zeros(shape, bool)
    for plane in iph.masks:
        rebuilt[plane.index] = decode_rle(plane.rle, shape[1:])
    np.testing.assert_array_equal(rebuilt, label == IPH.label)
    # One detection per plane of the reported IPH, with its box and that plane's best score.
    assert [(d.index, d.hemorrhage_id) for d in result.detections] == [(2, 1), (3, 1), (4, 1)]
    first = result.detections[0]
    assert first.box_pixels == (5, 5, 12, 12) and first.score == pytest.approx(0.97)
    assert first.box_lps_mm == (0.75, 2.25, 22.5, 1.25, 5.75, 57.5)  # this affine: k->x, j->z
    again = ExamResult.model_validate_json(result.model_dump_json())
    assert again == result
    with_label = exam_result(
        "1.2", "1.2.3", instances_from_labels(label, score), geometry, point, label_volume=label
    )
    assert with_label.label_volume is not None and len(with_label.label_volume) < 500
    np.testing.assert_array_equal(decode_label_volume(with_label.label_volume, shape), label)
    with pytest.raises(ValueError, match="expected"):
        decode_label_volume(with_label.label_volume, (1, 2, 3))
    strict = point.model_copy(update={"any_ich": 0.95})
    override = exam_result("1.2", "1.2.3", [], geometry, strict, probabilities={SAH: 0.9})
    assert override.classes[2].flagged and override.any_ich_probability == 0.9
    assert not override.any_ich_flagged


def test_geometry_of_a_tilted_instance_box_is_in_patient_space() -> None:
    spacing = (2.0, 1.0, 1.0)
    affine = np.eye(4)
    affine[:3, 0] = [0.0, 0.684, 1.879]  # planes 2 mm apart along a normal tilted 20 degrees
    affine[:3, 1] = [0.0, 0.940, -0.342]
    affine[:3, 2] = [1.0, 0.0, 0.0]
    geometry = MeasurementGrid((4, 4, 4), spacing, affine)
    label = np.zeros((4, 4, 4), np.uint8)
    label[1, 1, 1] = 1
    found = measure(instances_from_labels(label)[0], geometry, 1)
    centre = geometry.to_patient(np.array([1, 1, 1]))
    assert np.allclose(found.centroid_lps_mm, centre, atol=0.01)
    low, high = np.array(found.bbox_lps_mm[:3]), np.array(found.bbox_lps_mm[3:])
    assert np.all(low < centre) and np.all(centre < high)
    assert found.volume_ml == pytest.approx(0.002)


def test_operating_point_needs_every_class_and_flags_use_rounded_scores() -> None:
    with pytest.raises(ValueError, match="no threshold for SAH"):
        OperatingPoint(thresholds={IPH: 0.5, EDH_SDH: 0.5}, any_ich=0.5, source="test")
    point = OperatingPoint(thresholds={c: 0.5 for c in HemorrhageClass}, any_ich=0.5, source="t")
    geometry = MeasurementGrid((2, 4, 4), (5.0, 1.0, 1.0), np.eye(4))
    result = exam_result("1", "2", [], geometry, point, probabilities={IPH: 0.49996})
    iph = result.classes[0]
    assert iph.probability == 0.5 and iph.flagged == result.any_ich_flagged

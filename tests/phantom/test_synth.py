"""Synthetic studies: ground truth, every class and stratum, ingestion round trip, determinism."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from ich.dicom import load, scan, select
from ich.phantom.anatomy import PARENCHYMA, HeadParams, Tissue, build_anatomy
from ich.phantom.dataset import DatasetPlan, load_truth, truth_on_volume, write_dataset
from ich.phantom.generate import Case, CaseOptions, synthesize
from ich.phantom.lesions import Kind, LesionSpec, Site, draw_lesion, sample_spec
from ich.phantom.series_writer import encode_series, to_bytes
from ich.phantom.study import study_files, write_files
from ich.schema import SizeStratum

FORCED = {
    "punctate": ((Kind.IPH, "lobar"), (Kind.SAH, "convexity")),
    "small": ((Kind.IPH, "deep"), (Kind.EDH, "convexity"), (Kind.SAH, "sylvian")),
    "medium": ((Kind.SDH, "convexity"), (Kind.IPH, "lobar")),
    "medium-edh": ((Kind.EDH, "convexity"),),
    "large": ((Kind.IPH, "lobar"),),
    "large-sdh": ((Kind.SDH, "convexity"),),
    "large-edh": ((Kind.EDH, "convexity"),),
    "large-sah": ((Kind.SAH, "basal"),),
}
"""Lesion sets, one phantom case each, that together cover every class in every stratum."""


def _spec(kind: Kind, variant: str, stratum: str) -> LesionSpec:
    low_high = {"punctate": 0.0025, "small": 0.8, "medium": 12.0, "large": 45.0}
    return LesionSpec(kind, low_high[stratum], stratum, variant)


@pytest.fixture(scope="module")
def forced_cases() -> dict[str, Case]:
    cases = {}
    for index, (name, lesions) in enumerate(FORCED.items()):
        stratum = name.split("-")[0]
        specs = tuple(_spec(kind, variant, stratum) for kind, variant in lesions)
        options = CaseOptions(lesions=specs, slice_mm=5.0, gantry_tilt_deg=0.0)
        cases[name] = synthesize(20, index, options)
    return cases


def test_every_class_in_every_stratum(forced_cases: dict[str, Case]) -> None:
    """IPH and SAH in all four strata, EDH/SDH (EDH and SDH each) from small to large:
    punctate extra-axial blood is not generated (it reads as bone partial volume)."""
    produced = {(i.kind, i.stratum) for case in forced_cases.values() for i in case.instances}
    for name, lesions in FORCED.items():
        for kind, _ in lesions:
            assert (kind.value, name.split("-")[0]) in produced, (name, kind, produced)
    assert {s for _, s in produced} == {s.value for s in SizeStratum}
    assert {k for k, _ in produced} == {k.value for k in Kind}


def test_truth_volumes_are_voxel_counts_times_voxel_size(forced_cases: dict[str, Case]) -> None:
    for case in forced_cases.values():
        row_mm = case.spec.pixel_spacing_mm
        assert case.voxel_ml == pytest.approx(row_mm * row_mm * 5.0 / 1000)
        for instance in case.instances:
            voxels = int((case.instance == instance.id).sum())
            assert voxels == instance.voxels > 0
            assert instance.volume_ml == pytest.approx(voxels * case.voxel_ml, abs=1e-5)
            labels = np.unique(case.label[case.instance == instance.id])
            assert labels.tolist() == [instance.label]
        assert ((case.label > 0) == (case.instance > 0)).all()


def test_blood_is_hyperdense_and_mass_effect_is_reported(forced_cases: dict[str, Case]) -> None:
    large = forced_cases["large"]
    iph = large.instances[0]
    assert iph.mean_hu > 45  # parenchyma is about 31
    assert large.midline_shift_mm > 2.0
    small = forced_cases["small"].instances
    assert all(i.mean_hu > 40 for i in small if i.kind != "SAH")


def test_normal_study_has_no_labels() -> None:
    case = synthesize(4, 0, CaseOptions(prevalence=0.0, matrix=128))
    assert case.instances == [] and case.classes_present == []
    assert not case.label.any() and not case.instance.any()


def test_anatomy_places_lesions_in_their_compartments() -> None:
    rng = np.random.default_rng(5)
    params = HeadParams.sample(rng)
    anatomy = build_anatomy(params, params.grid(), rng)
    site = Site(anatomy.grid, anatomy.tissue, anatomy.depth_mm, anatomy.infratentorial)
    iph = draw_lesion(sample_spec(rng, Kind.IPH, "medium"), site, rng)
    tissue = anatomy.tissue[iph.box]
    inside = iph.blood > 0.5
    assert np.isin(tissue[inside], [*PARENCHYMA, Tissue.CSF]).all()
    sah = draw_lesion(sample_spec(rng, Kind.SAH, "small"), site, rng)
    assert (anatomy.tissue[sah.box][sah.blood > 0] == Tissue.CSF).all()
    sdh = draw_lesion(sample_spec(rng, Kind.SDH, "medium"), site, rng)
    depth = anatomy.depth_mm[sdh.box][sdh.blood > 0.5]
    assert depth.min() > 0 and np.median(depth) < 8.0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dataset")
    options = CaseOptions(prevalence=1.0, matrix=256, slice_mm=5.0)

    def make(seed: int, index: int, opts: CaseOptions) -> Case:
        """Case 1 is acquired with gantry tilt, case 0 without."""
        return synthesize(seed, index, replace(opts, gantry_tilt_deg=15.0 * index))

    write_dataset(out, DatasetPlan(9, 2, make, options, 1.0), {"seed": 9})
    return out


@pytest.mark.parametrize("index", [0, 1], ids=["straight", "gantry-tilt"])
def test_ingestion_selects_the_series_and_truth_follows_the_geometry(
    dataset: Path, index: int
) -> None:
    case_dir = dataset / f"case_{index:05d}"
    _, instance, affine, record = load_truth(case_dir)
    selection = select(scan(case_dir / "dicom"))
    assert selection.chosen.summary.series_uid == record["series_instance_uid"]
    assert len(selection.scan.series) >= 5
    volume = load(case_dir / "dicom")
    on_grid = truth_on_volume(instance, volume)
    for item in record["instances"]:
        assert (instance == item["id"]).sum() * record["truth"]["voxel_ml"] == pytest.approx(
            item["volume_ml"], abs=1e-5
        )
        kij = np.argwhere(on_grid == item["id"]).mean(axis=0)
        centroid = volume.to_patient(kij)
        assert np.linalg.norm(centroid - item["centroid_lps_mm"]) < 2.0
        assert volume.hu[on_grid == item["id"]].mean() > 35
    if index == 0:
        np.testing.assert_allclose(volume.affine, affine, atol=1e-3)
    else:
        assert "gantry_tilt_corrected" in {w.code for w in volume.warnings}


def test_manifest_lists_classes_and_strata(dataset: Path) -> None:
    import json

    manifest = json.loads((dataset / "manifest.json").read_text())
    assert len(manifest["cases"]) == 2
    for record in manifest["cases"]:
        assert record["hemorrhage"] and record["classes_present"]
        for item in record["instances"]:
            assert item["stratum"] in {s.value for s in SizeStratum}
            assert item["kind"] in {k.value for k in Kind}


def test_same_seed_same_bytes_other_seed_other_pixels() -> None:
    options = CaseOptions(matrix=128, slice_mm=5.0, prevalence=1.0)
    first = study_files(synthesize(2, 1, options), distractors=False)
    again = study_files(synthesize(2, 1, options), distractors=False)
    assert first == again
    other = synthesize(3, 1, options)
    assert not np.array_equal(other.hu[: len(first)], synthesize(2, 1, options).hu[: len(first)])


@pytest.mark.parametrize(
    "syntax",
    [
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        DeflatedExplicitVRLittleEndian,
        JPEGLSLossless,
        JPEG2000Lossless,
        RLELossless,
    ],
    ids=lambda s: s.name,
)
def test_every_transfer_syntax_decodes_to_the_same_hu(
    syntax: str, tmp_path: Path, small_case: Case
) -> None:
    spec = replace(small_case.spec, transfer_syntax=syntax)
    datasets = encode_series(small_case.hu, spec, small_case.study)
    plain_spec = replace(small_case.spec, transfer_syntax=ExplicitVRLittleEndian)
    plain = encode_series(small_case.hu, plain_spec, small_case.study)
    assert datasets[0].SOPInstanceUID == plain[0].SOPInstanceUID  # compression keeps the UID
    write_files(tmp_path, {f"{n}.dcm": to_bytes(ds) for n, ds in enumerate(datasets)})
    volume = load(tmp_path)
    intercept = spec.rescale_intercept
    expected = np.clip(np.rint(small_case.hu - intercept) + intercept, -1024, 3071)
    inside = _fov(expected.shape[-1])
    np.testing.assert_array_equal(volume.hu[:, inside], expected[:, inside])


@pytest.fixture(scope="module")
def small_case() -> Case:
    return synthesize(6, 0, CaseOptions(matrix=64, slice_mm=5.0))


def _fov(n: int) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    return (yy - (n - 1) / 2) ** 2 + (xx - (n - 1) / 2) ** 2 <= (n / 2 - 1) ** 2


def test_distractors_and_options_do_not_leak_into_the_series() -> None:
    """The analysable series depends on (seed, index, options), not on the distractor coin;
    other options give other UIDs, so a PACS never sees two contents under one UID."""
    plain = synthesize(8, 2, CaseOptions(matrix=128, slice_mm=5.0))
    with_contrast = synthesize(8, 2, CaseOptions(matrix=128, slice_mm=5.0, contrast=True))
    np.testing.assert_array_equal(plain.hu, with_contrast.hu)
    assert plain.spec.series_uid == with_contrast.spec.series_uid
    other = synthesize(8, 2, CaseOptions(matrix=64, slice_mm=5.0))
    assert other.study.study_uid != plain.study.study_uid


def test_extra_axial_mass_effect_shifts_the_midline(forced_cases: dict[str, Case]) -> None:
    assert forced_cases["large-sdh"].midline_shift_mm > 2.0
    assert forced_cases["punctate"].midline_shift_mm == 0.0

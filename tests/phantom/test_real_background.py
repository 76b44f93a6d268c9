"""Synthetic hemorrhage inserted into a real normal head CT (``--background real``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from ich.datasets.ctich import import_ctich
from ich.dicom import load
from ich.phantom.anatomy import Tissue
from ich.phantom.dataset import truth_on_volume
from ich.phantom.generate import Case, CaseOptions
from ich.phantom.lesions import Kind, LesionSpec
from ich.phantom.real_background import RealBackgroundError, RealBackgrounds
from ich.phantom.study import study_files, write_files
from ich.preprocess import InputSpec, ModelGrid
from ich.preprocess.stored_window import StoredWindow

pytestmark = pytest.mark.realdata


REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


@pytest.fixture(scope="module")
def backgrounds() -> RealBackgrounds:
    """The routine GE head only: the smallest real series, so the module stays quick."""
    if not (REAL / "ge_head_gantry_tilt").is_dir():
        pytest.skip(f"real samples not found at {REAL}")
    return RealBackgrounds.shared(REAL, names=("ge-gantry-tilt",))


def _case(backgrounds: RealBackgrounds, kind: Kind, variant: str, ml: float) -> Case:
    spec = LesionSpec(kind, ml, "medium" if ml >= 5 else "small", variant)
    return backgrounds.synthesize(5, int(ml * 10), CaseOptions(lesions=(spec,), slice_mm=4.0))


@pytest.mark.parametrize(
    ("kind", "variant", "allowed"),
    [
        (Kind.IPH, "lobar", {Tissue.WHITE, Tissue.CSF}),
        (Kind.SDH, "convexity", {Tissue.WHITE, Tissue.CSF, Tissue.VENTRICLE}),
        (Kind.SAH, "convexity", {Tissue.CSF}),
    ],
)
def test_lesions_respect_the_real_anatomy(
    backgrounds: RealBackgrounds, kind: Kind, variant: str, allowed: set[Tissue]
) -> None:
    case = _case(backgrounds, kind, variant, 8.0)
    (instance,) = case.instances
    assert instance.kind == kind.value and instance.volume_ml > 0.5
    site = backgrounds.backgrounds[0].site
    mask = case.label > 0
    kij = np.argwhere(mask)
    patient = kij @ case.affine[:3, :3].T + case.affine[:3, 3]
    index = np.rint(site.grid.index_of(patient)).astype(int)
    tissue = site.tissue[index[:, 0], index[:, 1], index[:, 2]]
    depth = site.depth_mm[index[:, 0], index[:, 1], index[:, 2]]
    assert np.isin(tissue, list(allowed)).mean() > 0.9
    assert (depth > 0).mean() > 0.9
    if kind is Kind.SDH:
        assert np.median(depth) < 10
    assert case.hu[mask].mean() > 40


def test_real_background_round_trips_through_ingestion(
    backgrounds: RealBackgrounds, tmp_path: Path
) -> None:
    case = _case(backgrounds, Kind.IPH, "deep", 3.0)
    write_files(tmp_path, study_files(case, distractors=False))
    volume = load(tmp_path / "dicom")
    np.testing.assert_allclose(volume.affine, case.affine, atol=1e-3)
    assert volume.shape == case.label.shape
    assert case.background == "real:ge-gantry-tilt"
    near = ndi.binary_dilation(case.label > 0, np.ones((3, 21, 21), bool))
    outside = ~near
    source = load(backgrounds.paths["ge-gantry-tilt"])
    assert volume.shape == source.shape
    same = np.abs(volume.hu[outside].astype(int) - source.hu[outside]) <= 1
    assert same.mean() > 0.999


def test_missing_real_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RealBackgroundError, match="--real-dir"):
        RealBackgrounds.shared(tmp_path)
    with pytest.raises(RealBackgroundError, match="Unknown"):
        RealBackgrounds.shared(tmp_path, names=("nope",))


@pytest.fixture(scope="module")
def ctich_heads(tmp_path_factory: pytest.TempPathFactory) -> RealBackgrounds:
    """Two CT-ICH heads without blood, converted as `ich import-ctich` does."""
    if not (REAL / "ctich_volumes").is_dir():
        pytest.skip(f"CT-ICH volumes not found at {REAL}")
    out = tmp_path_factory.mktemp("ctich") / "ctich"
    import_ctich(REAL / "ctich_volumes", out, patients=("054", "111"))
    return RealBackgrounds.ctich(out)


def test_bleeds_on_ctich_heads_keep_the_stored_window_and_their_patient(
    ctich_heads: RealBackgrounds, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = LesionSpec(Kind.EDH, 12.0, "medium", "convexity")
    case = ctich_heads.synthesize(7, 0, CaseOptions(lesions=(spec,), slice_mm=5.0, matrix=256))
    assert case.head["patient"] in {"ct-ich:054", "ct-ich:111"}
    assert float(case.hu.min()) >= -20 and float(case.hu.max()) <= 100
    blood = case.label == 2
    assert blood.sum() * case.voxel_ml == pytest.approx(12.0, rel=0.35)
    assert 45 < float(np.median(case.hu[blood])) <= 100
    write_files(tmp_path, study_files(case, distractors=False))
    volume = load(tmp_path / "dicom")
    assert StoredWindow.detect(volume.hu) == StoredWindow(-20.0, 100.0)
    # Bone was restored before the bleed was drawn and the slices averaged: away from the
    # bleed, no more blood-like pixels (60-95 HU) than the head itself shows on the model grid,
    # and far fewer than resampling it as stored would draw along the inner table.
    bleed = truth_on_volume(case.label, volume) > 0
    made = _blood_like(volume.hu, volume.spacing_mm, ~ndi.binary_dilation(bleed, iterations=12))
    source = load(ctich_heads.paths[case.head["source"]])
    own = _blood_like(source.hu, source.spacing_mm)
    assert made <= 1.15 * own + 300
    monkeypatch.setattr(StoredWindow, "detect", classmethod(lambda cls, hu: None))
    assert _blood_like(source.hu, source.spacing_mm) > 1.8 * own


def _blood_like(
    hu: np.ndarray, spacing: tuple[float, float, float], where: np.ndarray | None = None
) -> int:
    """Model-grid pixels of 60-95 HU (where ``where``, on the volume, holds)."""
    grid = ModelGrid.fit(hu, spacing, InputSpec())
    planes = grid.hu_planes(hu)
    inside = np.ones(planes.shape, bool) if where is None else grid.coverage(where) > 0.99
    return int(((planes >= 60) & (planes <= 95) & inside).sum())


def test_ctich_backgrounds_need_a_converted_folder(tmp_path: Path) -> None:
    with pytest.raises(RealBackgroundError, match="import-ctich"):
        RealBackgrounds.ctich(tmp_path)

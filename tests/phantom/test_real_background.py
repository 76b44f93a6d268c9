"""Synthetic hemorrhage inserted into a real normal head CT (``--background real``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from ich.dicom import load
from ich.phantom.anatomy import Tissue
from ich.phantom.generate import Case, CaseOptions
from ich.phantom.lesions import Kind, LesionSpec
from ich.phantom.real_background import RealBackgroundError, RealBackgrounds
from ich.phantom.study import study_files, write_files

pytestmark = pytest.mark.realdata


REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


@pytest.fixture(scope="module")
def backgrounds() -> RealBackgrounds:
    """The routine GE head only: the smallest real series, so the module stays quick."""
    if not (REAL / "ge_head_gantry_tilt").is_dir():
        pytest.skip(f"real samples not found at {REAL}")
    return RealBackgrounds(REAL, names=("ge-gantry-tilt",))


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
        RealBackgrounds(tmp_path)
    with pytest.raises(RealBackgroundError, match="Unknown"):
        RealBackgrounds(tmp_path, names=("nope",))

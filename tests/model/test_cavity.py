"""The intracranial cavity and the detections it drops (``ich/preprocess/cavity.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset

from ich.dicom import load
from ich.evaluate.cases import labelled_case
from ich.pipeline import SeriesContext, prepare
from ich.postprocess import DetectorOutputs, detections_on_volume
from ich.preprocess import InputSpec, ModelGrid
from ich.preprocess.cavity import inside_share, intracranial_cavity

SPEC = InputSpec(size=64, pixel_mm=2.0, slab_mm=5.0)


def _head(planes: int = 9, size: int = 64) -> np.ndarray:
    """HU planes of a round head on a 2 mm grid: brain (30 HU) inside a 6 mm skull, 4 mm of
    scalp (40 HU) outside it, air around."""
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    radius = np.hypot(y, x)
    plane = np.full((size, size), -1000.0, dtype=np.float32)
    plane[radius < 26] = 40.0
    plane[radius < 24] = 1000.0
    plane[radius < 21] = 30.0
    return np.repeat(plane[None], planes, axis=0)


def test_the_cavity_is_the_brain_inside_the_skull_not_the_skull_or_the_scalp() -> None:
    hu = _head()
    cavity = intracranial_cavity(hu, 2.0, 5.0)
    brain, skull, scalp = hu == 30.0, hu == 1000.0, hu == 40.0
    assert cavity[brain].all()
    assert not cavity[skull].any() and not cavity[scalp].any()


def test_a_fracture_wider_than_the_closing_is_bridged_from_the_planes_around_it() -> None:
    hu = _head()
    hu[4, :32, 28:36] = 30.0  # a 16 mm gap through the skull and scalp of one plane
    hu[4, :5, 28:36] = -1000.0
    cavity = intracranial_cavity(hu, 2.0, 5.0)
    brain = hu[4] == 30.0
    radius = np.hypot(*(np.mgrid[:64, :64] - 31.5))
    assert cavity[4][(radius < 21) & brain].all()
    assert not cavity[4][radius >= 24].any(), "the repair stays within the plane's own skull"


def test_an_enclosed_region_of_fat_is_no_cavity() -> None:
    hu = _head()
    hu[:, 26:38, 26:38] = -100.0  # an orbit-like box of fat inside a ring of bone
    hu[:, 24:40, 24:26] = hu[:, 24:40, 38:40] = 1000.0
    hu[:, 24:26, 24:40] = hu[:, 38:40, 24:40] = 1000.0
    cavity = intracranial_cavity(hu, 2.0, 5.0)
    assert not cavity[:, 26:38, 26:38].any()
    assert cavity[hu == 30.0].all()


def test_the_cavity_is_found_coarse_and_brought_back_to_the_inner_table() -> None:
    fine = np.repeat(np.repeat(_head(), 2, axis=1), 2, axis=2)  # the same head on 1 mm pixels
    cavity = intracranial_cavity(fine, 1.0, 5.0)
    assert cavity[fine == 30.0].all()
    assert not cavity[fine == 1000.0].any() and not cavity[fine == 40.0].any()
    with pytest.raises(ValueError, match="planes, rows, columns"):
        intracranial_cavity(fine[0], 1.0, 5.0)


def test_under_a_window_too_narrow_to_tell_blood_from_bone_the_cavity_is_everywhere() -> None:
    hu = _head()
    assert intracranial_cavity(hu, 2.0, 5.0, ceiling=73.0).all()  # an 80 HU wide PNG window
    np.testing.assert_array_equal(
        intracranial_cavity(hu, 2.0, 5.0, ceiling=100.0), intracranial_cavity(hu, 2.0, 5.0)
    )


def _outputs(boxes: list[list[float]]) -> DetectorOutputs:
    k = len(boxes)
    return DetectorOutputs(
        boxes=np.broadcast_to(np.array(boxes, dtype=np.float32), (4, k, 4)).copy(),
        labels=np.full((4, k), 1),
        scores=np.full((4, k), 0.9),
        masks=np.ones((4, k, 28, 28), dtype=np.float32),
        counts=np.full(4, k),
    )


def test_detections_mostly_outside_the_skull_are_dropped() -> None:
    hu = _head(planes=8)
    grid = ModelGrid.fit(hu, (2.5, 2.0, 2.0), SPEC)
    cavity = intracranial_cavity(grid.hu_planes(hu), SPEC.pixel_mm, SPEC.slab_mm)
    inside, scalp = [28.0, 28.0, 35.0, 35.0], [0.0, 28.0, 9.0, 35.0]
    found = detections_on_volume(grid, _outputs([inside, scalp]), cavity)
    assert len(found) == 8 and {tuple(np.argwhere(d.mask).mean(0) > 20) for d in found} == {
        (True, True)
    }
    assert len(detections_on_volume(grid, _outputs([inside, scalp]))) == 16
    assert inside_share(cavity[0], grid.model_mask(np.ones((28, 28)), np.array(scalp))) < 0.5
    with pytest.raises(ValueError, match="cavity"):
        detections_on_volume(grid, _outputs([inside]), cavity[:2])


def test_the_series_context_carries_the_cavity_through_json(
    series: Callable[..., list[Dataset]], write: Callable[..., Path]
) -> None:
    volume = load(write(series()))
    prepared = prepare(volume, InputSpec(size=112, pixel_mm=2.0))  # the whole head
    context = SeriesContext.of(volume, prepared)
    back = SeriesContext.model_validate_json(context.model_dump_json())
    np.testing.assert_array_equal(back.cavity_planes, prepared.cavity)
    middle = prepared.cavity[:, 50:62, 50:62]
    assert middle.all(axis=(1, 2)).sum() >= 4, "the phantom's brain is inside its skull"
    assert not prepared.cavity[:, :2, :2].any()


@pytest.mark.realdata
def test_real_blood_lies_inside_the_cavity_of_windowed_trauma_heads(
    real: Path, tmp_path: Path
) -> None:
    """CT-ICH patients with blood, among them open skulls (fractures, case 066 and 068): at
    least 3 in 4 of their blood's model pixels are inside (the rest sits at the bone's edge or in
    a temporal fossa the fill lost), so detections on it are kept (`MIN_INSIDE`)."""
    from ich.datasets.ctich import import_ctich

    spec = InputSpec(size=256, pixel_mm=1.0, slab_mm=5.0, context=5)
    source = real / "ctich_volumes"
    if not source.is_dir():
        pytest.skip(f"CT-ICH volumes not found at {source}")
    out = tmp_path / "ctich"
    import_ctich(source, out, patients=("066", "068", "071"))
    for entry in json.loads((out / "manifest.json").read_text())["cases"]:
        case = labelled_case(out / entry["case"])
        prepared = prepare(case.volume, spec)
        blood = prepared.grid.labels(case.label, 4) > 0
        assert (blood & prepared.cavity).sum() >= 0.75 * blood.sum(), entry["case"]

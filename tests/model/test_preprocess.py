"""The model grid, windows and stacks: what the detector sees, and the way back."""

from __future__ import annotations

import numpy as np
import pytest

from ich.evaluate.metrics import dice
from ich.postprocess import DetectorOutputs, detections_on_volume
from ich.preprocess import InputSpec, ModelGrid, blocks, model_input, stack_indices, windowed

SPEC = InputSpec(size=64, pixel_mm=2.0)


def _head(shape: tuple[int, int, int], spacing: float) -> np.ndarray:
    """Air around a disc of brain (40 HU) whose centre is off the image centre."""
    _, rows, cols = shape
    ii, jj = np.mgrid[:rows, :cols] * spacing
    inside = (ii - 0.55 * rows * spacing) ** 2 + (jj - 0.45 * cols * spacing) ** 2 < 50.0**2
    return np.broadcast_to(np.where(inside, 40, -1000).astype(np.int16), shape).copy()


def test_planes_are_resampled_to_the_model_pixel_and_centred_on_the_head() -> None:
    hu = _head((4, 400, 400), 0.5)
    grid = ModelGrid.fit(hu, (5.0, 0.5, 0.5), SPEC)
    assert grid.scale == (4.0, 4.0) and grid.group == 1
    planes = grid.hu_planes(hu)
    assert planes.shape == (4, 64, 64)
    brain = planes[0] > -480  # half way between air and brain
    # The 100 mm disc becomes about 50 px across on 2 mm pixels, in the middle of the plane.
    assert brain.sum() == pytest.approx(np.pi * 25**2, rel=0.06)
    rows, cols = np.nonzero(brain)
    assert abs(rows.mean() - 31.5) < 1.5 and abs(cols.mean() - 31.5) < 1.5


def test_thin_series_are_averaged_into_slabs() -> None:
    hu = np.full((11, 32, 32), -1000, dtype=np.int16)  # air round it: a full-range series
    hu[:, 10:20, 10:20] = np.arange(11)[:, None, None] * 10
    grid = ModelGrid.fit(hu, (1.25, 2.0, 2.0), SPEC)
    assert grid.group == 4 and grid.planes == 3
    assert list(grid.slab(2)) == [8, 9, 10]
    planes = grid.hu_planes(hu)
    centre = planes[:, 31, 31]
    np.testing.assert_allclose(centre, [15.0, 55.0, 90.0], atol=1e-3)


def test_labels_take_the_majority_and_masks_come_back_at_volume_resolution() -> None:
    hu = _head((3, 240, 240), 0.5)
    label = np.zeros(hu.shape, dtype=np.uint8)
    ii, jj = np.mgrid[:240, :240]
    disc = (ii - 130) ** 2 + (jj - 100) ** 2 < 30**2
    label[1][disc] = 2
    grid = ModelGrid.fit(hu, (5.0, 0.5, 0.5), SPEC)
    on_grid = grid.labels(label)
    assert set(np.unique(on_grid)) == {0, 2}
    # 30 px of 0.5 mm -> 7.5 px of 2 mm.
    assert (on_grid[1] == 2).sum() == pytest.approx(np.pi * 7.5**2, rel=0.15)
    # The same disc as a detection: a 28 x 28 mask over its model-grid box, cell j at
    # x1 + (j + 0.5) * width / 28 with pixel centres at integers (where RoIAlign samples).
    rows, cols = np.nonzero(on_grid[1] == 2)
    box = np.array([cols.min() - 1, rows.min() - 1, cols.max() + 2, rows.max() + 2], float)
    y = (np.arange(28) + 0.5) / 28 * (box[3] - box[1]) + box[1]
    x = (np.arange(28) + 0.5) / 28 * (box[2] - box[0]) + box[0]
    centre_r = (130 - grid.centre[0]) / grid.scale[0] + 31.5
    centre_c = (100 - grid.centre[1]) / grid.scale[1] + 31.5
    mask = ((y[:, None] - centre_r) ** 2 + (x[None, :] - centre_c) ** 2 < 7.5**2).astype(float)
    back = grid.volume_mask(mask, box)
    assert back.shape == (240, 240)
    assert dice(back, disc) > 0.95


def test_detector_outputs_become_detections_on_every_plane_of_their_slab() -> None:
    hu = np.full((8, 64, 64), -1000, dtype=np.int16)  # no head: the grid centres on the image
    grid = ModelGrid.fit(hu, (2.5, 2.0, 2.0), SPEC)
    assert grid.group == 2
    k = 3
    outputs = DetectorOutputs(
        boxes=np.broadcast_to(np.array([9.6, 9.6, 19.4, 19.4]), (4, k, 4)),
        labels=np.full((4, k), 3),
        scores=np.full((4, k), 0.8),
        masks=np.ones((4, k, 28, 28)),
        counts=np.array([0, 1, 0, 0]),
    )
    found = detections_on_volume(grid, outputs)
    assert [d.plane for d in found] == [2, 3]
    # Box coordinates are pixel centres: [9.6, 19.4] holds pixels 10 to 19.
    assert found[0].mask.sum() == 100 and found[0].hemorrhage_class.label == 3
    with pytest.raises(ValueError, match="planes of outputs"):
        detections_on_volume(ModelGrid.fit(hu[:4], (2.5, 2.0, 2.0), SPEC), outputs)


def test_windows_are_channels_window_major_and_stacks_repeat_the_edges() -> None:
    assert stack_indices(4, 5).tolist()[0] == [0, 0, 0, 1, 2]
    assert stack_indices(4, 5).tolist()[3] == [1, 2, 3, 3, 3]
    hu = np.stack([np.full((64, 64), v, dtype=np.float32) for v in (0.0, 40.0, 80.0)])
    win = windowed(hu, ((40.0, 80.0),))
    np.testing.assert_allclose(win[0, :, 0, 0], [0.0, 0.5, 1.0])
    series = model_input(hu, SPEC)
    assert series.shape == (3, 3 + 4, 64, 64)
    # The edge planes are repeated twice: plane 1's stack, series[:, 1:6], is planes 0,0,1,2,2.
    np.testing.assert_allclose(series[0, 1:6, 0, 0], [0.0, 0.0, 0.5, 1.0, 1.0])


def test_blocks_overlap_by_their_context_and_cover_every_plane_once() -> None:
    series = np.arange(9, dtype=np.float32)[None, :, None, None] * np.ones((2, 1, 4, 4))
    cut = blocks(series, context=5, planes=2)  # 5 planes predicted: 3 blocks
    assert cut.shape == (3, 2, 2 + 4, 4, 4)
    assert cut[1, 0, :, 0, 0].tolist() == [2, 3, 4, 5, 6, 7]
    assert cut[2, 0, :, 0, 0].tolist() == [4, 5, 6, 7, 8, 8]  # filled with the last plane
    outputs = [np.arange(6).reshape(3, 2)] * 5
    assert DetectorOutputs.from_blocks(outputs, 5).counts.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="do not cover"):
        DetectorOutputs.from_blocks(outputs, 7)
    with pytest.raises(ValueError, match="at least 5 planes"):
        blocks(series[:, :4], context=5)


def test_spec_rejects_an_even_context() -> None:
    with pytest.raises(ValueError, match="odd"):
        InputSpec(context=4)

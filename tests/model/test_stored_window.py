"""Series stored in a brain window (CT-ICH): found, and resampled without a blood-like rim
along the skull; full-range series are left alone."""

from __future__ import annotations

import numpy as np
import pytest

from ich.preprocess import InputSpec, ModelGrid
from ich.preprocess.stored_window import BONE_HU, StoredWindow
from ich.train.dataset import BRAIN_WINDOW

SPEC = InputSpec(size=128, pixel_mm=1.0)


def _skull(slices: int = 5) -> np.ndarray:
    """Full-range HU at 0.45 mm: air, a 6 mm skull of 1200 HU, brain of 30 HU."""
    yy, xx = np.mgrid[:400, :400] * 0.45
    radius = np.hypot(yy - 90.0, xx - 90.0)
    plane = np.full(radius.shape, -1000.0, dtype=np.float32)
    plane[radius < 80] = 1200.0
    plane[radius < 74] = 30.0
    return np.repeat(plane[None], slices, axis=0)


def _rim(planes: np.ndarray) -> int:
    """Model pixels that look like thin acute blood (60-95 HU) in the brain-window range."""
    return int(((planes >= 60) & (planes <= 95)).sum())


def test_windowed_series_are_found_and_full_range_ones_are_not() -> None:
    full = _skull()
    assert StoredWindow.detect(full) is None
    assert StoredWindow.detect(np.clip(full, -20, 100)) == StoredWindow(-20.0, 100.0)
    assert StoredWindow.detect(np.full((3, 8, 8), 40.0)) is None  # flat: nothing to restore
    brain_only = np.clip(full, -20, 100)
    brain_only[brain_only == 100] = 30  # air and brain only: no skull at a ceiling
    assert StoredWindow.detect(brain_only) is None


def test_resampling_a_clipped_skull_draws_no_rim_along_the_inner_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    full = _skull()
    clipped = np.clip(full, -20, 100)
    grid = ModelGrid.fit(clipped, (5.0, 0.45, 0.45), SPEC)
    restored = grid.hu_planes(clipped)
    reference = grid.hu_planes(full)
    # The few blood-like pixels a full-range series shows at the skull, the clipped one shows
    # about as few (the restored bone is 1000 HU, not this skull's 1200).
    assert _rim(restored) <= 2 * _rim(reference)
    assert np.mean(np.abs(np.clip(restored, -20, 100) - np.clip(reference, -20, 100))) < 1.0
    # Resampled as stored, the same series grows a blood-like ring round the brain.
    monkeypatch.setattr(StoredWindow, "detect", classmethod(lambda cls, hu: None))
    naive = ModelGrid.fit(clipped, (5.0, 0.45, 0.45), SPEC).hu_planes(clipped)
    assert _rim(naive) > 5 * _rim(restored)
    assert _rim(naive) / len(naive) > 100  # a third of the inner table's 465 mm


def test_training_shows_full_range_planes_as_if_windowed() -> None:
    planes = BRAIN_WINDOW.simulate(_skull(1))
    assert set(np.unique(planes)) == {-1000.0, 30.0, BONE_HU}
    mixed = BRAIN_WINDOW.simulate(np.array([[-50.0, -20.0, 55.0, 100.0, 400.0]], np.float32))
    assert mixed.tolist() == [[-1000.0, -1000.0, 55.0, BONE_HU, BONE_HU]]

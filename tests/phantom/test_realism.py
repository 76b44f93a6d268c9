"""Tissue statistics recover the HU of a known synthetic head, and run on a real slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from ich.dicom import scan, select
from ich.dicom.pixels import decode_hu
from ich.phantom.realism import tissue_statistics

PIXEL_MM = 0.8
SLICE_MM = 5.0
BRAIN_RADIUS_MM = 80.0
CSF_RADIUS_MM = 15.0
NOISE_SD = 5.0


def head(
    slices: int = 3, seed: int = 0, noise_sd: float = NOISE_SD
) -> tuple[np.ndarray, np.ndarray]:
    """Concentric disks: a 1000 HU skull ring around a brain of 30 HU (left) and 40 HU (right)
    halves, a central 8 HU CSF blob, a 65 HU bleed, and white noise. Returns HU, bleed mask."""
    n = 256
    y, x = (np.mgrid[:n, :n] - (n - 1) / 2) * PIXEL_MM
    r = np.hypot(y, x)
    image = np.full((n, n), -1000.0)
    image[r < BRAIN_RADIUS_MM + 7] = 1000.0
    image[r < BRAIN_RADIUS_MM] = np.where(x[r < BRAIN_RADIUS_MM] < 0, 30.0, 40.0)
    image[r < CSF_RADIUS_MM] = 8.0
    bleed = np.hypot(y - 40, x - 30) < 8
    image[bleed] = 65.0
    noise = np.random.default_rng(seed).normal(0.0, noise_sd, (slices, n, n))
    return image + noise, np.broadcast_to(bleed, noise.shape)


def test_recovers_the_tissues_of_a_known_head() -> None:
    hu, bleed = head()
    stats = tissue_statistics(hu, (SLICE_MM, PIXEL_MM, PIXEL_MM), bleed)
    assert stats.skull and stats.slices == 3
    assert stats.parenchyma_median_hu == pytest.approx(35.0, abs=1.5)
    assert stats.grey_matter_hu == pytest.approx(40.0, abs=1.0)
    assert stats.white_matter_hu == pytest.approx(30.0, abs=1.0)
    assert stats.grey_white_separation is not None and stats.grey_white_separation > 3
    assert stats.csf_median_hu == pytest.approx(8.0, abs=1.0)
    eroded_radius = BRAIN_RADIUS_MM - 2.0
    assert stats.csf_fraction == pytest.approx((CSF_RADIUS_MM / eroded_radius) ** 2, rel=0.15)
    assert stats.bone_median_hu == pytest.approx(1000.0, abs=2.0)
    assert stats.noise_sd_hu == pytest.approx(NOISE_SD, rel=0.05)
    assert stats.roi_noise_sd_hu == pytest.approx(NOISE_SD, rel=0.05)
    assert stats.blood_median_hu == pytest.approx(65.0, abs=1.0)
    assert stats.blood_p10_hu == pytest.approx(65.0 - 1.28 * NOISE_SD, abs=1.5)
    assert stats.blood_p90_hu == pytest.approx(65.0 + 1.28 * NOISE_SD, abs=1.5)
    slice_ml = np.pi * BRAIN_RADIUS_MM**2 * SLICE_MM / 1000.0
    assert stats.intracranial_volume_ml == pytest.approx(3 * slice_ml, rel=0.03)


def test_a_single_slice_gives_the_same_answer() -> None:
    hu, _ = head(slices=1, seed=1)
    stats = tissue_statistics(hu, (SLICE_MM, PIXEL_MM, PIXEL_MM))
    assert stats.slices == 1
    assert stats.parenchyma_median_hu == pytest.approx(35.0, abs=1.5)
    assert stats.csf_median_hu == pytest.approx(8.0, abs=1.0)
    assert stats.noise_sd_hu == pytest.approx(NOISE_SD, rel=0.05)
    assert stats.blood_median_hu is None


def test_correlated_noise_reads_lower_at_pixel_scale_than_in_an_roi() -> None:
    hu, _ = head(slices=1)
    soft = ndimage.gaussian_filter(hu, (0, 1.0, 1.0))  # a soft reconstruction kernel
    pixel_sd = np.std(soft - ndimage.gaussian_filter(head(1, noise_sd=0)[0], (0, 1.0, 1.0)))
    stats = tissue_statistics(soft, (SLICE_MM, PIXEL_MM, PIXEL_MM))
    assert stats.noise_sd_hu is not None and stats.roi_noise_sd_hu is not None
    assert stats.noise_sd_hu < 0.8 * stats.roi_noise_sd_hu
    assert stats.roi_noise_sd_hu == pytest.approx(pixel_sd, rel=0.2)


def test_skull_stripped_clipped_volume() -> None:
    """Like the DeepBleed sample: bone and background overwritten with 0, HU clipped to
    -66..320, the scalp left outside the removed skull."""
    hu, _ = head()
    n = hu.shape[1]
    r = np.hypot(*((np.mgrid[:n, :n] - (n - 1) / 2) * PIXEL_MM))
    stripped = np.where(r < BRAIN_RADIUS_MM, np.clip(np.rint(hu), -66, 320), 0.0)
    stripped[:, (r > BRAIN_RADIUS_MM + 7) & (r < BRAIN_RADIUS_MM + 12)] = 35.0  # scalp
    stats = tissue_statistics(stripped.astype(np.float32), (SLICE_MM, PIXEL_MM, PIXEL_MM))
    assert not stats.skull and stats.bone_median_hu is None
    assert stats.slices == 3
    assert stats.parenchyma_median_hu == pytest.approx(35.0, abs=1.5)
    assert stats.csf_median_hu == pytest.approx(8.0, abs=1.0)
    slice_ml = np.pi * BRAIN_RADIUS_MM**2 * SLICE_MM / 1000.0
    assert stats.intracranial_volume_ml == pytest.approx(3 * slice_ml, rel=0.03)


def test_no_head_gives_no_statistics() -> None:
    stats = tissue_statistics(np.full((2, 64, 64), -1000.0), (SLICE_MM, PIXEL_MM, PIXEL_MM))
    assert stats.slices == 0 and stats.parenchyma_median_hu is None
    assert stats.intracranial_volume_ml is None and stats.noise_sd_hu is None


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="volume"):
        tissue_statistics(np.zeros((64, 64)), (SLICE_MM, PIXEL_MM, PIXEL_MM))
    with pytest.raises(ValueError, match="blood mask"):
        tissue_statistics(np.zeros((1, 64, 64)), (1, 1, 1), np.zeros((64, 64), bool))


@pytest.mark.realdata
def test_one_real_cq500_slice(real: Path) -> None:
    grid = select(scan(real / "cq500" / "dicom")).chosen.grid
    header = grid.instances[len(grid.instances) // 2]
    hu = decode_hu(header)[None]
    stats = tissue_statistics(hu, (grid.spacing_mm[0], *header.pixel_spacing))
    assert stats.skull and stats.slices == 1
    assert 28 <= stats.parenchyma_median_hu <= 42
    assert 0 <= stats.csf_median_hu <= 15
    assert stats.bone_median_hu > 700
    # A thin (0.625 mm) slice: noisier than 5 mm slices, and correlated between pixels.
    assert 2 < stats.noise_sd_hu < stats.roi_noise_sd_hu < 15
    assert stats.white_matter_hu < stats.grey_matter_hu
    # One slice of a cranial cavity about 13 cm across.
    assert 50 < stats.intracranial_volume_ml / grid.spacing_mm[0] * 10 < 250

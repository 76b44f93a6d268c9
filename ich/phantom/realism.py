"""HU statistics of a head CT, to compare synthetic studies with real ones by the same code.

A phantom is realistic only in the numbers a model can see: tissue HU, grey/white contrast, CSF,
skull, noise and blood. :func:`tissue_statistics` measures them automatically with few
assumptions (thresholds, hole filling, erosion; no atlas, no registration) so that it runs
unchanged on a synthetic volume, a real series, a single slice or a skull-stripped, HU-clipped
volume. The numbers are for comparison between volumes measured here, not clinical values:
each field says what it measures and how it is biased.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, stats

BONE_HU = 300.0
"""Above this a voxel is bone (skull, calcification); below it soft tissue, blood or CSF."""
TISSUE_MIN_HU = -50.0
"""Intracranial tissue lower bound: keeps the noisy tail of CSF, drops fat and air (sinuses)."""
CSF_MAX_HU = 15.0
PARENCHYMA_HU = (15.0, 55.0)
"""Smoothed HU taken as brain parenchyma: above CSF, below acute blood and calcification."""
EROSION_MM = 2.0
"""Shell removed inside the skull: partial volume with bone would read as blood or brain."""
CLOSING_MM = 5.0
"""Gaps in a slice's skull ring up to twice this are bridged before filling: thin bone at the
vertex and the frontal sinus read below 300 HU, and fractures and burr holes open the ring."""
MIN_COMPONENT_MM2 = 1000.0
MIN_COMPONENT_FRACTION = 0.25
"""A slice's enclosed region is kept when at least this large, absolutely and relative to its
largest: drops globes, the spinal canal and sinus mucosa at the skull base."""
SKULL_FRACTION = 0.02
"""Bone voxels per tissue voxel below which the volume is taken to have no skull."""
MIN_FILL_MM2 = 20.0
"""Area of one exact value from which a region is the fill of a skull-stripped volume."""
MIN_VOXELS = 200
"""Fewest voxels a statistic is computed from; fewer gives None."""
ROI_MM = 5.0
"""Side of the square window of the ROI noise estimate: lesion scale."""
MIXTURE_BIN_HU = 0.05
MIXTURE_ITERATIONS = 500
MIXTURE_MIN_SEPARATION = 1.0
MIXTURE_MIN_WEIGHT = 0.1
"""Below these Ashman's D or component weight the mixture has found no second tissue."""


@dataclass(frozen=True)
class TissueStats:
    """What :func:`tissue_statistics` measured; None where there were too few voxels.

    "Intracranial" is the eroded mask (see ``intracranial_volume_ml``) less any blood mask;
    tissue classes are decided on the 3x3 in-plane mean, so that noise does not move voxels
    between classes, and their medians are of the unsmoothed HU.
    """

    parenchyma_median_hu: float | None
    """Median HU of intracranial voxels classed parenchyma (smoothed 15..55 HU)."""
    grey_matter_hu: float | None
    white_matter_hu: float | None
    """Means of a 2-component Gaussian mixture fitted to the smoothed parenchymal values
    (higher: grey, lower: white). Smoothing lowers the noise but mixes thin cortex with white
    matter, so the gap underestimates the true contrast. None when the components nearly
    coincide (``grey_white_separation`` < 1) or one holds under 10 % of the voxels."""
    grey_white_separation: float | None
    """Ashman's D of the two components, |difference of means| / rms sd x sqrt(2). Above 2 the
    histogram has two peaks; from 1 to 2, one peak with a shoulder (usual on real CT), whose
    split into two tissues is the mixture model's, not the data's."""
    csf_median_hu: float | None
    """Median HU of intracranial voxels classed CSF (smoothed below 15 HU): ventricles,
    cisterns and wide sulci, with their partial volume."""
    csf_fraction: float | None
    """CSF voxels over intracranial voxels. The erosion drops the subarachnoid CSF next to the
    skull, so this underestimates the true CSF fraction."""
    bone_median_hu: float | None
    """Median HU above 300 in the analysed slices: skull (partial volume lowers it), skull base
    and any calcification. None without a skull."""
    noise_sd_hu: float | None
    """Pixel-scale noise: sqrt of the median variance of 3x3 in-plane neighbourhoods lying in
    parenchyma, chi-square corrected to equal the sd for white noise. Reconstruction kernels
    correlate neighbouring pixels, which lowers it: compare with ``roi_noise_sd_hu``."""
    roi_noise_sd_hu: float | None
    """The same over about 5 x 5 mm windows: what an ROI drawn in white matter would read.
    Close to ``noise_sd_hu`` for white noise, larger for correlated noise; texture and
    grey/white edges raise it."""
    blood_median_hu: float | None
    blood_p10_hu: float | None
    blood_p90_hu: float | None
    """Median and 10th/90th percentiles of every voxel of the blood mask, edges included."""
    intracranial_volume_ml: float | None
    """Volume of the intracranial mask before its 2 mm erosion, over the analysed slices only:
    one slice gives its area times the slice spacing; partial coverage or skipped slices give
    less than the whole cranial cavity."""
    slices: int
    """Slices with an intracranial mask (others: skull ring open, or nothing large enclosed)."""
    skull: bool
    """True: the mask is what the skull ring encloses. False: no skull in the volume
    (skull-stripped, or HU clipped below bone); the mask is what the fill value encloses."""


def _ellipse(radius_mm: float, pixel_mm: tuple[float, float]) -> np.ndarray:
    """An in-plane disk of ``radius_mm`` on pixels of (row, column) size ``pixel_mm``."""
    ry, rx = (max(radius_mm / p, 1.0) for p in pixel_mm)
    y, x = np.ogrid[-int(ry) : int(ry) + 1, -int(rx) : int(rx) + 1]
    return (y / ry) ** 2 + (x / rx) ** 2 <= 1.0


def _large_components(mask: np.ndarray, pixel_area_mm2: float) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    areas = np.bincount(labels.ravel())[1:] * pixel_area_mm2
    keep = (areas >= MIN_COMPONENT_MM2) & (areas >= MIN_COMPONENT_FRACTION * areas.max())
    return np.isin(labels, np.flatnonzero(keep) + 1)


def _skull_interior(bone: np.ndarray, pixel_mm: tuple[float, float]) -> np.ndarray:
    """What one slice's skull ring encloses, after a closing of radius CLOSING_MM."""
    out = np.zeros(bone.shape, dtype=bool)
    box = ndimage.find_objects(bone.view(np.uint8))
    if not box:
        return out
    margin = [int(np.ceil(CLOSING_MM / p)) + 1 for p in pixel_mm]
    crop = tuple(
        slice(max(s.start - m, 0), s.stop + m) for s, m in zip(box[0], margin, strict=True)
    )
    near_bone = ndimage.distance_transform_edt(~bone[crop], sampling=pixel_mm) <= CLOSING_MM
    ring = ndimage.distance_transform_edt(near_bone, sampling=pixel_mm) > CLOSING_MM
    out[crop] = ndimage.binary_fill_holes(ring) & ~ring
    return out


def _fill_value(hu: np.ndarray) -> float:
    """The commonest value on the in-plane border: what a skull-stripped volume is filled with."""
    border = np.concatenate(
        [hu[:, 0].ravel(), hu[:, -1].ravel(), hu[:, :, 0].ravel(), hu[:, :, -1].ravel()]
    )
    values, counts = np.unique(border, return_counts=True)
    return float(values[np.argmax(counts)])


def _intracranial(
    hu: np.ndarray, smooth: np.ndarray, pixel_mm: tuple[float, float], skull: bool
) -> np.ndarray:
    """Per slice, the large tissue regions that the skull encloses.

    Without a skull, the "skull" is the background: regions of at least MIN_FILL_MM2 at
    exactly the fill value. Skull stripping writes that value over the removed bone, so what
    is left of the scalp stays outside; tissue never holds one exact value over such an area.
    """
    pixel_area = pixel_mm[0] * pixel_mm[1]
    fill = None if skull else _fill_value(hu)
    mask = np.zeros(hu.shape, dtype=bool)
    for k in range(hu.shape[0]):
        if skull:
            bone = hu[k] > BONE_HU
        else:
            labels, _ = ndimage.label(hu[k] == fill)
            areas = np.bincount(labels.ravel()) * pixel_area
            bone = (areas >= MIN_FILL_MM2)[labels] & (labels > 0)
        enclosed = _skull_interior(bone, pixel_mm) & (smooth[k] > TISSUE_MIN_HU)
        mask[k] = _large_components(enclosed, pixel_area)
    return mask


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if values.size >= MIN_VOXELS else None


def _two_peaks(values: np.ndarray) -> tuple[float, float, float] | None:
    """Higher mean, lower mean and Ashman's D of a 1D two-Gaussian mixture fitted by EM; None
    when the two components coincide or one is nearly empty.

    EM runs on a histogram of MIXTURE_BIN_HU bins: as exact as the values for HU statistics,
    and fast however many voxels there are.
    """
    if values.size < MIN_VOXELS:
        return None
    edges = np.arange(values.min(), values.max() + 2 * MIXTURE_BIN_HU, MIXTURE_BIN_HU)
    counts, edges = np.histogram(values, edges)
    x = (edges[:-1] + edges[1:])[counts > 0] / 2
    counts = counts[counts > 0].astype(np.float64)
    means = np.percentile(values, [25.0, 75.0])
    variances = np.full(2, values.var() + MIXTURE_BIN_HU**2)
    weights = np.full(2, 0.5)
    for _ in range(MIXTURE_ITERATIONS):
        log_p = np.log(weights) - 0.5 * (np.log(variances) + (x[:, None] - means) ** 2 / variances)
        resp = np.exp(log_p - log_p.max(axis=1, keepdims=True))
        resp *= (counts / resp.sum(axis=1))[:, None]
        totals = resp.sum(axis=0) + 1e-12
        previous = means
        means = (resp * x[:, None]).sum(axis=0) / totals
        variances = (resp * (x[:, None] - means) ** 2).sum(axis=0) / totals + MIXTURE_BIN_HU**2
        weights = totals / counts.sum()
        if np.abs(means - previous).max() < 1e-4:
            break
    separation = float(abs(means[1] - means[0]) * np.sqrt(2.0 / variances.sum()))
    if separation < MIXTURE_MIN_SEPARATION or weights.min() < MIXTURE_MIN_WEIGHT:
        return None
    return float(means.max()), float(means.min()), separation


def _local_sd(hu: np.ndarray, region: np.ndarray, window: int) -> float | None:
    """Noise sd from the median variance of in-plane ``window``-square neighbourhoods in
    ``region``; the median discounts the windows that straddle an edge."""
    inner = ndimage.binary_erosion(region, np.ones((1, window, window), dtype=bool))
    if inner.sum() < MIN_VOXELS:
        return None
    size = (1, window, window)
    centred = hu - np.float32(np.median(hu[region]))
    mean = ndimage.uniform_filter(centred, size)[inner]
    mean_square = ndimage.uniform_filter(centred * centred, size)[inner]
    n = window * window
    variance = np.median(mean_square - mean * mean) * n / (n - 1)
    white_noise_median = stats.chi2.median(n - 1) / (n - 1)
    return float(np.sqrt(max(variance, 0.0) / white_noise_median))


def tissue_statistics(
    hu: np.ndarray,
    spacing_mm: tuple[float, float, float],
    blood_mask: np.ndarray | None = None,
) -> TissueStats:
    """HU statistics of a head CT ``hu`` (z, y, x) with voxel size ``spacing_mm`` (z, y, x).

    One slice is a volume with z = 1. Slices are analysed in-plane only, so thick and thin
    slices, gantry-tilt corrected or not, are treated alike. ``blood_mask`` (same shape)
    gives the blood statistics and is left out of the tissue ones.

    Raises:
        ValueError: ``hu`` is not 3D, or ``blood_mask`` has another shape.
    """
    hu = np.asarray(hu, dtype=np.float32)
    if hu.ndim != 3:
        raise ValueError(f"expected a (z, y, x) volume, got shape {hu.shape}")
    if blood_mask is not None and blood_mask.shape != hu.shape:
        raise ValueError(f"blood mask shape {blood_mask.shape} differs from {hu.shape}")
    blood = np.zeros(hu.shape, bool) if blood_mask is None else np.asarray(blood_mask, bool)
    blood_hu = hu[blood]
    pixel_mm = (float(spacing_mm[1]), float(spacing_mm[2]))

    smooth = ndimage.uniform_filter(hu, size=(1, 3, 3))
    bone = hu > BONE_HU
    skull = bool(bone.sum() >= SKULL_FRACTION * (smooth > TISSUE_MIN_HU).sum())
    full = _intracranial(hu, smooth, pixel_mm, skull)
    analysed = full.any(axis=(1, 2))
    bone_hu = hu[analysed][bone[analysed]] if skull else np.empty(0)

    box = ndimage.find_objects(full.view(np.uint8))
    if box:  # the rest needs only the intracranial box: much less work on whole-head series
        hu, smooth, blood, full = hu[box[0]], smooth[box[0]], blood[box[0]], full[box[0]]
    inside = ndimage.binary_erosion(full, _ellipse(EROSION_MM, pixel_mm)[None])
    tissue = inside & ~blood
    csf = tissue & (smooth < CSF_MAX_HU)
    low, high = PARENCHYMA_HU
    parenchyma = tissue & (smooth >= low) & (smooth <= high)
    peaks = _two_peaks(smooth[parenchyma])
    tissue_voxels = int(tissue.sum())
    roi_window = 2 * round(ROI_MM / 2 / min(pixel_mm)) + 1
    blood_percentiles = (
        np.percentile(blood_hu, [10.0, 50.0, 90.0]) if blood_hu.size >= MIN_VOXELS else None
    )
    return TissueStats(
        parenchyma_median_hu=_median(hu[parenchyma]),
        grey_matter_hu=None if peaks is None else peaks[0],
        white_matter_hu=None if peaks is None else peaks[1],
        grey_white_separation=None if peaks is None else peaks[2],
        csf_median_hu=_median(hu[csf]),
        csf_fraction=float(csf.sum() / tissue_voxels) if tissue_voxels >= MIN_VOXELS else None,
        bone_median_hu=_median(bone_hu),
        noise_sd_hu=_local_sd(hu, parenchyma, 3),
        roi_noise_sd_hu=_local_sd(hu, parenchyma, roi_window),
        blood_median_hu=None if blood_percentiles is None else float(blood_percentiles[1]),
        blood_p10_hu=None if blood_percentiles is None else float(blood_percentiles[0]),
        blood_p90_hu=None if blood_percentiles is None else float(blood_percentiles[2]),
        intracranial_volume_ml=float(full.sum() * np.prod(spacing_mm) / 1000.0)
        if analysed.any()
        else None,
        slices=int(analysed.sum()),
        skull=skull,
    )

"""Synthetic hemorrhage inserted into real normal head CT (``ich synth --background real``).

The real scans are read from a folder at run time (never copied): the CQ500 thin series and the
routine GE head with gantry tilt in ``../shared/data/real``. Each is resampled once to a 1 mm
grid and segmented into the compartments lesion placement needs (bone, intracranial space,
CSF, parenchyma, distance to the inner table), so lesions land where they occur: IPH in
parenchyma, EDH/SDH against the inner table, SAH in the CSF spaces. The output series keeps
the real image outside the lesions (real anatomy, noise and texture), optionally averaged into
thicker slices; inside lesions the real noise level is added back so blood is not smoother
than its surroundings.

Bleeds totalling over 15 mL push the real brain away as on the phantom (the image is warped
inside the inner table), and the midline shift is recorded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ich.dicom import DicomInputError, load
from ich.dicom.volume import Volume
from ich.errors import IchError
from ich.phantom.anatomy import Tissue
from ich.phantom.dataset import patient_key
from ich.phantom.fields import HeadGrid
from ich.phantom.generate import (
    Case,
    CaseOptions,
    composite,
    decide_prevalence,
    labelled_case,
    lesion_specs,
    synthetic_study,
    until_visible,
)
from ich.phantom.lesions import Site, draw_lesion
from ich.phantom.mass_effect import Push, displacement, midline_shift_mm
from ich.phantom.scanner import HeadPose, Planes, Renderer, ScanProtocol
from ich.phantom.series_writer import SeriesSpec, derived_uid
from ich.preprocess.stored_window import StoredWindow

SOURCES = {
    "cq500-ct0": "cq500/dicom",
    "ge-gantry-tilt": "ge_head_gantry_tilt",
}
"""Normal (or majority-read normal) real series usable as backgrounds, relative to the root."""


class RealBackgroundError(IchError):
    code = "real_background_unavailable"
    title = "Real backgrounds unavailable"


@dataclass
class Background:
    """One real scan, resampled and segmented for lesion placement."""

    name: str
    volume: Volume
    site: Site
    hu: np.ndarray
    """float32 HU to composite on: the volume's, with flat bone and air restored when it
    was stored in a display window (so no resampling draws a rim along the skull)."""
    window: StoredWindow | None = None
    """The display window the scan was stored in: the output is clipped and stored alike."""
    patient: str | None = None
    """Who the scan belongs to, where cross-validation must keep them apart."""


def _segment(volume: Volume, name: str, owner: str | None = None) -> Background:
    """1 mm grid in patient space (LPS) with the compartments of the real head."""
    corners = np.array(
        [[k, i, j] for k in (0, volume.shape[0] - 1) for i in (0, volume.shape[1] - 1)
         for j in (0, volume.shape[2] - 1)]
    )  # fmt: skip
    patient = volume.to_patient(corners)
    grid = HeadGrid(tuple(patient.min(0)), tuple(patient.max(0)), (1.0, 1.0, 1.0))
    z, y, x = grid.axes()
    points = np.stack(np.broadcast_arrays(x, y, z), axis=-1)
    inverse = np.linalg.inv(volume.affine)
    kij = points @ inverse[:3, :3].T + inverse[:3, 3]
    window = StoredWindow.detect(volume.hu)
    source = volume.hu.astype(np.float32) if window is None else window.restore(volume.hu)
    hu = ndi.map_coordinates(source, np.moveaxis(kij, -1, 0), order=1, cval=-1024.0)
    smooth = ndi.gaussian_filter(hu, 1.0)
    bone = smooth > 250
    filled = np.stack([ndi.binary_fill_holes(plane) for plane in bone])
    intracranial = filled & ~ndi.binary_dilation(bone, iterations=1) & (smooth > -30)
    labels, count = ndi.label(intracranial)
    if count:
        sizes = ndi.sum(intracranial, labels, range(1, count + 1))
        intracranial = labels == 1 + int(np.argmax(sizes))
    depth = ndi.distance_transform_edt(intracranial).astype(np.float32)
    depth[~intracranial] = -1.0
    tissue = np.where(bone, Tissue.CORTICAL_BONE, Tissue.AIR).astype(np.uint8)
    tissue[(hu > -200) & ~bone & ~intracranial] = Tissue.MUSCLE
    tissue[intracranial] = Tissue.WHITE
    csf = intracranial & (smooth < 17)
    tissue[csf] = Tissue.CSF
    deep_csf, n = ndi.label(csf & (depth > 12))
    if n:
        sizes = ndi.sum(np.ones_like(depth), deep_csf, range(1, n + 1))
        big = 1 + np.flatnonzero(sizes > 400)
        tissue[np.isin(deep_csf, big)] = Tissue.VENTRICLE
    # Dense spots in the brain are calcifications; along the inner table it is partial
    # volume with bone.
    tissue[intracranial & (smooth > 60) & (depth > 4)] = Tissue.CALCIFICATION
    kk, ii, jj = np.nonzero(intracranial)
    centre = (float(x.ravel()[jj].mean()), float(y.ravel()[ii].mean()), float(z.ravel()[kk].mean()))
    infratentorial = intracranial & (z < centre[2] - 22) & (y > centre[1] + 5)
    site = Site(grid, tissue, depth, infratentorial, centre_mm=centre)
    return Background(name, volume, site, source, window, owner)


def _noise_sd(hu: np.ndarray) -> float:
    """Quantum noise of real planes: robust spread of the in-plane residual in brain."""
    local = ndi.uniform_filter(hu, (1, 5, 5))
    brain = (local > 20) & (local < 45)
    residual = (hu - local)[brain]
    return float(1.4826 * np.median(np.abs(residual - np.median(residual)))) * math.sqrt(25 / 24)


def _resampled(
    background: Background, slice_mm: float | None, matrix: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """The real HU averaged into slabs of about ``slice_mm`` (native when None or thinner)
    and into ``matrix`` pixels across; returns (HU, affine, slice spacing).

    Raises:
        RealBackgroundError: ``matrix`` does not divide the real images' matrix.
    """
    volume = background.volume
    native = volume.spacing_mm[0]
    group = 1 if slice_mm is None else max(1, round(slice_mm / native))
    rows, cols = volume.shape[1:]
    if rows % matrix or cols % matrix:
        raise RealBackgroundError(
            f"--matrix {matrix} does not divide the real images' {rows}x{cols} pixels; "
            f"use {rows} or a divisor of it."
        )
    pool = rows // matrix
    planes = volume.shape[0] // group
    hu = background.hu[: planes * group]
    hu = hu.reshape(planes, group, matrix, pool, matrix, pool).mean(axis=(1, 3, 5))
    affine = volume.affine.copy()
    affine[:3, 3] += (
        affine[:3, 0] * (group - 1) / 2 + (affine[:3, 1] + affine[:3, 2]) * (pool - 1) / 2
    )
    affine[:3, 0] *= group
    affine[:3, 1:3] *= pool
    return hu, affine, native * group


_CSF_HU = 9.0


def _intracranial_block(
    shape: tuple[int, ...], affine: np.ndarray, site: Site
) -> tuple[slice, slice, slice]:
    """The block of the output grid that holds the cranial cavity (the warp's only domain:
    the whole grid would cost gigabytes of coordinates on thin series)."""
    kk, ii, jj = np.nonzero(site.depth_mm > 0)
    z, y, x = site.grid.axes()
    lo = np.array([x.ravel()[jj].min(), y.ravel()[ii].min(), z.ravel()[kk].min()])
    hi = np.array([x.ravel()[jj].max(), y.ravel()[ii].max(), z.ravel()[kk].max()])
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                        for c in (lo[2], hi[2])])  # fmt: skip
    inverse = np.linalg.inv(affine)
    kij = corners @ inverse[:3, :3].T + inverse[:3, 3]
    start = np.clip(np.floor(kij.min(axis=0)).astype(int) - 1, 0, None)
    stop = np.minimum(np.ceil(kij.max(axis=0)).astype(int) + 2, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))  # type: ignore[return-value]


def _warped(
    hu: np.ndarray,
    affine: np.ndarray,
    push: Push,
    site: Site,
    noise_sd: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """The real image with the brain pushed away from a large bleed (mass effect).

    Only intracranial voxels move; one that would pull in bone from beyond the inner table
    gets CSF instead, the space the brain left.
    """
    block = _intracranial_block(hu.shape, affine, site)
    k, i, j = (index.ravel() for index in np.meshgrid(*(np.arange(b.start, b.stop) for b in block),
                                                       indexing="ij", sparse=False))  # fmt: skip
    kij = np.stack([k, i, j], axis=-1).astype(np.float32)
    points = kij @ affine[:3, :3].T.astype(np.float32) + affine[:3, 3].astype(np.float32)
    depth = site.nearest(site.depth_mm, points)
    inside = depth > 0
    shift = push(points[inside], depth[inside])
    moved = points[inside] - shift
    inverse = np.linalg.inv(affine)
    source = moved @ inverse[:3, :3].T + inverse[:3, 3]
    values = ndi.map_coordinates(hu, source.T, order=1, mode="nearest")
    # Pulled from beyond the inner table: the space the brain left, CSF.
    values[site.nearest(site.depth_mm, moved) <= 0] = _CSF_HU
    # Interpolation averages noise away; give back what it took where the image moved.
    moving = np.linalg.norm(shift, axis=-1) > 0.3
    grain = rng.standard_normal(int(moving.sum())).astype(np.float32)
    values[moving] += grain * np.float32(0.7 * noise_sd)
    out = hu.copy()
    out[k[inside], i[inside], j[inside]] = values
    return out


class RealBackgrounds:
    """Real scans (name -> DICOM folder), loaded and segmented on first use; ``patients``
    names whose each scan is, where cross-validation must keep a patient in one fold."""

    def __init__(self, paths: dict[str, Path], patients: dict[str, str] | None = None) -> None:
        self.paths = paths
        self.patients = patients or {}

    @classmethod
    def shared(cls, root: Path, names: tuple[str, ...] = tuple(SOURCES)) -> RealBackgrounds:
        """The normal full-range series of the real samples folder (:data:`SOURCES`)."""
        unknown = set(names) - set(SOURCES)
        if unknown:
            raise RealBackgroundError(
                f"Unknown real background(s) {sorted(unknown)}; known: {sorted(SOURCES)}."
            )
        available = {n: root / SOURCES[n] for n in names if (root / SOURCES[n]).is_dir()}
        if not available:
            raise RealBackgroundError(
                f"None of the real background series ({', '.join(SOURCES.values())}) were "
                f"found under {root}. Point --real-dir at the folder of real samples."
            )
        return cls(available)

    @classmethod
    def ctich(cls, folder: Path) -> RealBackgrounds:
        """The CT-ICH heads without blood, from a folder ``ich import-ctich`` wrote (stored in
        the brain window: the studies made on them are clipped and stored alike)."""
        manifest = folder / "manifest.json"
        if not manifest.is_file():
            raise RealBackgroundError(
                f"{manifest} not found: convert CT-ICH first (`ich import-ctich --out {folder}`)"
            )
        records = [r for r in json.loads(manifest.read_text())["cases"] if not r["hemorrhage"]]
        if not records:
            raise RealBackgroundError(f"{folder} holds no CT-ICH head without blood")
        names = {f"ct-ich-{r['patient']}": r for r in records}
        return cls(
            {name: folder / r["case"] / "dicom" for name, r in names.items()},
            {name: patient_key(r) for name, r in names.items()},
        )

    @cached_property
    def backgrounds(self) -> list[Background]:
        loaded = []
        for name, path in self.paths.items():
            try:
                loaded.append(_segment(load(path), name, self.patients.get(name)))
            except DicomInputError as exc:
                raise RealBackgroundError(f"{name} could not be read: {exc.message}") from exc
        return loaded

    def eligible(self, options: CaseOptions) -> list[Background]:
        """The backgrounds that can give the requested matrix and slice thickness (a scan is
        averaged into thicker slices, never thinned).

        Raises:
            RealBackgroundError: none can.
        """
        found = [
            b
            for b in self.backgrounds
            if b.volume.shape[1] % options.matrix == 0
            and b.volume.shape[2] % options.matrix == 0
            and (options.slice_mm is None or b.volume.spacing_mm[0] <= options.slice_mm * 1.05)
        ]
        if not found:
            sizes = ", ".join(
                f"{b.name} {b.volume.shape[1]}x{b.volume.shape[2]} at "
                f"{b.volume.spacing_mm[0]:.3g} mm"
                for b in self.backgrounds
            )
            raise RealBackgroundError(
                f"No real background gives a {options.matrix} matrix at "
                f"{options.slice_mm or 'native'} mm slices (available: {sizes}); choose a "
                "matrix that divides theirs and a slice thickness at least theirs."
            )
        return found

    def synthesize(self, seed: int, index: int, options: CaseOptions) -> Case:
        """Like :func:`ich.phantom.generate.synthesize`, on a real head."""
        chosen = decide_prevalence(seed, index, options)
        return until_visible(lambda rng: self._case(seed, index, chosen, rng), seed, index)

    def _case(
        self, seed: int, index: int, options: CaseOptions, rng: np.random.Generator
    ) -> tuple[Case, int]:
        choices = self.eligible(options)
        background = choices[int(rng.integers(len(choices)))]
        site = background.site
        slice_mm = options.slice_mm
        if slice_mm is None:
            slice_mm = float(rng.choice([5.0, 2.5]))
        hu, affine, spacing = _resampled(background, slice_mm, options.matrix)
        site.slice_mm = spacing
        lesions = [draw_lesion(spec, site, rng) for spec in lesion_specs(rng, options)]
        noise_sd = _noise_sd(hu)
        push = displacement(lesions, site.grid)
        if push is not None:
            hu = _warped(hu, affine, push, site, noise_sd, rng)
        matrix = hu.shape[1]
        row = affine[:3, 2] / np.linalg.norm(affine[:3, 2])
        col = affine[:3, 1] / np.linalg.norm(affine[:3, 1])
        pixel = float(np.linalg.norm(affine[:3, 2]))
        normal = np.cross(row, col)
        step = float(affine[:3, 0] @ normal)
        study = synthetic_study(f"real:{background.name}", seed, index, options.digest())
        intercept = -1024.0 if rng.random() < 0.75 else 0.0
        window = background.window
        # Stored as the background was: a windowed scan's 0..255 over its window.
        slope = 1.0 if window is None else (window.ceiling - window.floor) / 255.0
        intercept = intercept if window is None else window.floor
        spec = SeriesSpec(
            slices=len(hu),
            matrix=matrix,
            pixel_spacing_mm=pixel,
            table_increment_mm=step,
            orientation=(*row, *col),
            # Informational: the planes' angle to a true axial plane.
            tilt_deg=float(np.degrees(np.arccos(min(abs(normal[2]), 1.0)))),
            origin_mm=tuple(affine[:3, 3]),
            rescale_intercept=intercept,
            rescale_slope=slope,
            pad_outside_fov=False,
            kernel="STANDARD",
            description=f"HEAD {spacing:.3g}mm STND",
            series_uid=derived_uid(study.study_uid, "axial"),
            transfer_syntax=options.transfer_syntax
            or ScanProtocol.sample(rng, 250.0).transfer_syntax,
        )
        origins = spec.origins()
        planes = Planes(origins, row, col, pixel, matrix)
        identity = HeadPose(np.eye(3), np.zeros(3))
        renderer = Renderer(site.grid, identity, planes, spacing)
        image = hu.copy()
        best, owner = composite(image, lesions, renderer, site, rng)
        # Blood replaced the real image and its noise: put the noise back where blood is.
        grain = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(noise_sd)
        image += grain * np.minimum(best * 2, 1)
        if window is not None:  # clipped after every resampling, as the source was stored
            image = np.clip(image, window.floor, window.ceiling)
        protocol = ScanProtocol(
            matrix=matrix,
            pixel_spacing_mm=pixel,
            slice_mm=spacing,
            gantry_tilt_deg=spec.tilt_deg,
            manufacturer="ICH Phantom",
            kernel="STANDARD",
            rescale_intercept=intercept,
            transfer_syntax=spec.transfer_syntax,
            noise_sd_hu=noise_sd,
        )
        head = {"source": background.name}
        if background.patient is not None:
            head["patient"] = background.patient
        blend = (best, owner, lesions)
        name = f"real:{background.name}"
        case = labelled_case(seed, index, study, spec, protocol, image, blend, head, name)
        case.midline_shift_mm = round(midline_shift_mm(push, site.centre), 2)
        return case, len(lesions)

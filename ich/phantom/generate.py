"""One synthetic case: a head, its bleeds and mimics, scanned into a series with ground truth.

A case is fully determined by ``(seed, index)``: every random draw comes from one generator
seeded with both, so a data set can be written in any order or in parallel and still be
byte-identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ich import __version__
from ich.phantom.anatomy import Anatomy, HeadParams, Tissue, build_anatomy, tentorium_height
from ich.phantom.attenuation import TissueHU, to_hu
from ich.phantom.lesions import (
    Lesion,
    LesionSpec,
    Site,
    draw_lesion,
    sample_spec,
    texture,
)
from ich.phantom.mass_effect import apply_mass_effect
from ich.phantom.mimics import add_beam_hardening, add_calcifications_and_falx, add_motion
from ich.phantom.scanner import HeadPose, Planes, Renderer, ScanProtocol, add_noise, render_exact
from ich.phantom.series_writer import SeriesSpec, StudyInfo, derived_uid
from ich.quantify.strata import stratum_of
from ich.schema import HemorrhageClass

AIR_HU = -1000.0
_MIN_FRACTION = 0.5
"""A voxel is labelled blood when at least half of it is blood."""
_BONE_MIXED_HU = 130.0
"""Above this (before noise) a blood voxel is mostly partial volume with bone."""


@dataclass(frozen=True)
class CaseOptions:
    """What a case may contain; ``None`` means drawn at random."""

    prevalence: float = 0.5
    """Probability that the case has any hemorrhage."""
    lesions: tuple[LesionSpec, ...] | None = None
    """Exactly these lesions (overrides ``prevalence``)."""
    max_lesions: int = 3
    slice_mm: float | None = None
    matrix: int = 512
    transfer_syntax: str | None = None
    gantry_tilt_deg: float | None = None
    contrast: bool = False
    """Also render the scan after iodinated contrast (for a distractor series)."""

    def digest(self) -> str:
        """What the analysable series depends on, for its UIDs: other options, other UIDs
        (``contrast`` only adds a distractor series, so it is left out)."""
        return repr(replace(self, contrast=False))


@dataclass(frozen=True)
class InstanceTruth:
    """One hemorrhage as the ground truth records it (measured on the series' grid)."""

    id: int
    kind: str
    label: int
    variant: str
    acute: bool
    volume_ml: float
    stratum: str
    intended_stratum: str
    """The stratum the bleed was drawn for; thin SAH can measure smaller."""
    target_ml: float
    voxels: int
    mean_hu: float
    centroid_lps_mm: tuple[float, float, float]


@dataclass
class Case:
    """The analysable series of a case in HU, with its labels and what went into it."""

    seed: int
    index: int
    study: StudyInfo
    spec: SeriesSpec
    protocol: ScanProtocol
    hu: np.ndarray
    """float32 (slices, rows, columns) in position order, as written to DICOM."""
    label: np.ndarray
    """uint8, same shape: 0 background, 1 IPH, 2 EDH/SDH, 3 SAH."""
    instance: np.ndarray
    """uint16, same shape: 0 background, else the :class:`InstanceTruth` id."""
    instances: list[InstanceTruth]
    mimics: list[str]
    midline_shift_mm: float
    head: dict[str, Any]
    background: str = "phantom"
    dropped_lesions: int = 0
    """Lesions drawn but too faint to label on this series (0 unless retries ran out)."""
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    """Other renderings of the same scan (e.g. post-contrast) for distractor series."""

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel of the series (slice spacing measured along the normal)."""
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    @property
    def affine(self) -> np.ndarray:
        """4x4 from (slice, row, column) indices to patient LPS mm (sheared when tilted)."""
        return self.spec.affine()

    @property
    def classes_present(self) -> list[str]:
        labels = sorted({i.label for i in self.instances})
        return [HemorrhageClass.from_label(label).value for label in labels]


_ATTEMPTS = 4


def case_rng(seed: int, index: int) -> np.random.Generator:
    """The main stream of a case (its first attempt)."""
    return np.random.default_rng([seed, index])


class Stream:
    """Independent random streams of a case, keyed after (seed, index): each choice draws
    from its own, so adding distractors or redrawing a bleed changes nothing else."""

    ATTEMPT = 0
    DISTRACTORS = 1
    CONTRAST = 2
    PREVALENCE = 3
    BONE_KERNEL = 7


def stream(seed: int, index: int, which: int, *more: int) -> np.random.Generator:
    return np.random.default_rng([seed, index, which, *more])


def until_visible(
    build: Callable[[np.random.Generator], tuple[Case, int]], seed: int, index: int
) -> Case:
    """Build a case, drawing it again (deterministically) while a lesion it was given is
    invisible on its series: a study meant to bleed must show every bleed it claims.

    ``build`` returns the case and how many lesions it drew. The last attempt is kept as it
    is, with ``dropped_lesions`` saying how many did not show.
    """
    for attempt in range(_ATTEMPTS):
        rng = case_rng(seed, index) if attempt == 0 else stream(seed, index, 0, attempt)
        case, drawn = build(rng)
        case.dropped_lesions = drawn - len(case.instances)
        if not case.dropped_lesions:
            break
    return case


def lesion_specs(rng: np.random.Generator, options: CaseOptions) -> list[LesionSpec]:
    if options.lesions is not None:
        return list(options.lesions)
    if rng.random() >= options.prevalence:
        return []
    count = 1 + int(rng.binomial(options.max_lesions - 1, 0.25))
    specs = [sample_spec(rng)]
    for _ in range(count - 1):
        # Second bleeds are mostly small: contusions, thin SDH, a little SAH.
        stratum = str(rng.choice(["punctate", "small", "medium"], p=[0.2, 0.6, 0.2]))
        specs.append(sample_spec(rng, stratum=stratum))
    return specs


def _series_spec(
    protocol: ScanProtocol, pose: HeadPose, params: HeadParams, uid: str
) -> SeriesSpec:
    """Slices from the foramen magnum to the vertex, contiguous at the slice thickness."""
    shell = params.skull_mm + params.scalp_mm
    top = [(0.0, 0.0, params.top + shell), (0.0, -params.front * 0.6, params.top * 0.75 + shell)]
    bottom = [(0.0, 28.0, -62.0), (0.0, -params.front, -40.0)]
    z_top = pose.to_patient(np.array(top))[:, 2].max()
    z_bottom = pose.to_patient(np.array(bottom))[:, 2].min()
    step = protocol.slice_mm
    slices = math.ceil((z_top - z_bottom) / step) + 1
    thick = f"{protocol.slice_mm:g}mm"
    return SeriesSpec(
        slices=slices,
        matrix=protocol.matrix,
        pixel_spacing_mm=protocol.pixel_spacing_mm,
        table_increment_mm=step,
        tilt_deg=protocol.gantry_tilt_deg,
        first_z_mm=float(z_bottom),
        rescale_intercept=protocol.rescale_intercept,
        kernel=protocol.kernel,
        manufacturer=protocol.manufacturer,
        description=f"HEAD {thick} {protocol.kernel}",
        series_number=2,
        transfer_syntax=protocol.transfer_syntax,
        series_uid=uid,
    )


def _planes(spec: SeriesSpec) -> Planes:
    row, col = spec.row_column()
    return Planes(spec.origins(), row, col, spec.pixel_spacing_mm, spec.matrix)


def _noise_boost(pose: HeadPose, spec: SeriesSpec) -> np.ndarray:
    """Slices through the skull base are noisier (more bone in the beam)."""
    row, col = spec.row_column()
    centres = spec.origins() + (spec.matrix - 1) / 2 * spec.pixel_spacing_mm * (row + col)
    z_head = pose.to_head(centres)[:, 2]
    return 1.0 + 0.5 * np.clip((-20.0 - z_head) / 30.0, 0.0, 1.0)


def composite(
    image: np.ndarray,
    lesions: list[Lesion],
    renderer: Renderer,
    site: Site,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Blend each lesion's blood (and oedema) into the image; returns the winning fraction
    and lesion number per voxel."""
    best = np.zeros(image.shape, dtype=np.float32)
    owner = np.zeros(image.shape, dtype=np.uint16)
    for number, lesion in enumerate(lesions, start=1):
        oedema = np.zeros(0, np.float32)
        if lesion.exact is not None:
            patch = render_exact(
                renderer,
                lesion.exact.inside,
                site.allowed(lesion.exact.allowed),
                lesion.exact.lower_mm,
                lesion.exact.upper_mm,
            )
            if patch is None:
                continue
            region, fraction = patch
            blood_hu = fraction * np.float32(lesion.hu)
        else:
            fields = [lesion.blood, lesion.blood * texture(lesion, rng)]
            if lesion.oedema is not None:
                fields.append(lesion.oedema)
            rendered = renderer.render_patch(fields, lesion.box)
            if rendered is None:
                continue
            region, (fraction, blood_hu, *rest) = rendered
            np.clip(fraction, 0.0, 1.0, out=fraction)
            oedema = rest[0] if rest else oedema
        view = image[region]
        if oedema.size:
            view -= lesion.oedema_drop_hu * oedema
        view *= 1.0 - fraction
        view += blood_hu
        best_view, owner_view = best[region], owner[region]
        wins = fraction > best_view
        best_view[wins] = fraction[wins]
        owner_view[wins] = number
    return best, owner


def truth(
    case_hu: np.ndarray,
    best: np.ndarray,
    owner: np.ndarray,
    lesions: list[Lesion],
    affine: np.ndarray,
    voxel_ml: float,
) -> tuple[np.ndarray, np.ndarray, list[InstanceTruth]]:
    """Label and instance volumes and the per-instance record, measured on the series grid.

    A voxel is blood when at least half of it is; a punctate bleed too small for that
    anywhere (split across slices) keeps the voxels holding at least half its peak, so it is
    still labelled. Lesions with nothing left (peak under 20%, under half everywhere, or only
    voxels mixed with bone) are invisible on this series and left out of the truth.
    """
    instance = np.zeros(best.shape, dtype=np.uint16)
    label = np.zeros(best.shape, dtype=np.uint8)
    records = []
    for number, lesion in enumerate(lesions, start=1):
        mine = owner == number
        peak = float(best[mine].max()) if mine.any() else 0.0
        if peak < 0.2:
            continue
        # Voxels sharing the slice with bone read as bone, not blood: an annotator leaves
        # them out, and so does the label.
        punctate = lesion.spec.stratum == "punctate"
        floor = min(_MIN_FRACTION, 0.5 * peak) if punctate else _MIN_FRACTION
        mask = mine & (best >= floor) & (case_hu < _BONE_MIXED_HU)
        if not mask.any():
            continue
        new_id = len(records) + 1
        instance[mask] = new_id
        label[mask] = lesion.spec.kind.label
        voxels = int(mask.sum())
        volume = voxels * voxel_ml
        kij = np.argwhere(mask).mean(axis=0)
        centroid = affine[:3, :3] @ kij + affine[:3, 3]
        records.append(
            InstanceTruth(
                id=new_id,
                kind=lesion.spec.kind.value,
                label=int(lesion.spec.kind.label),
                variant=lesion.spec.variant,
                acute=lesion.spec.acute,
                volume_ml=round(volume, 5),
                stratum=stratum_of(volume).value,
                intended_stratum=lesion.spec.stratum,
                target_ml=round(lesion.spec.target_ml, 5),
                voxels=voxels,
                mean_hu=round(float(case_hu[mask].mean()), 1),
                centroid_lps_mm=tuple(round(float(c), 2) for c in centroid),  # type: ignore[arg-type]
            )
        )
    return label, instance, records


def _enhancement(anatomy: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """HU added by iodinated contrast: dura, choroid plexus and the venous sinuses."""
    tissue = anatomy.tissue
    gain = np.zeros(tissue.shape, dtype=np.float32)
    gain[tissue == Tissue.DURA] = rng.uniform(40, 80)
    gain[np.isin(tissue, [Tissue.GREY, Tissue.DEEP_GREY])] = rng.uniform(2, 5)
    gain[(anatomy.depth_mm > 0) & (anatomy.depth_mm < 1.5)] += rng.uniform(30, 60)
    return gain


def synthetic_study(background: str, seed: int, index: int, options: str) -> StudyInfo:
    """Identifiers of a synthetic study, fixed by (seed, index) and what else shapes its
    pixels (``options``, the generator version); no real patient data."""
    key = ("ich-synth", __version__, background, options, seed, index)
    return StudyInfo(
        study_uid=derived_uid(*key, "study"),
        frame_of_reference_uid=derived_uid(*key, "frame"),
        patient_id=f"SYN-{seed}-{index:05d}",
        patient_name=f"Synthetic^Case{index:05d}",
        accession=f"{background[0].upper()}{seed % 10000:04d}{index:06d}",
    )


def labelled_case(
    seed: int,
    index: int,
    study: StudyInfo,
    spec: SeriesSpec,
    protocol: ScanProtocol,
    image: np.ndarray,
    blend: tuple[np.ndarray, np.ndarray, list[Lesion]],
    head: dict[str, Any],
    background: str = "phantom",
) -> Case:
    """A case from its composited image (before noise) and ``composite``'s (fraction, owner)
    with the lesions: the label and instance volumes and records are measured here."""
    case = Case(
        seed=seed,
        index=index,
        study=study,
        spec=spec,
        protocol=protocol,
        hu=image,
        label=np.zeros(0, np.uint8),
        instance=np.zeros(0, np.uint16),
        instances=[],
        mimics=[],
        midline_shift_mm=0.0,
        head=head,
        background=background,
    )
    best, owner, lesions = blend
    case.label, case.instance, case.instances = truth(
        image, best, owner, lesions, case.affine, case.voxel_ml
    )
    return case


def synthesize(seed: int, index: int, options: CaseOptions | None = None) -> Case:
    """Build one phantom case (the series and its ground truth) in memory."""
    chosen = decide_prevalence(seed, index, options or CaseOptions())
    return until_visible(lambda rng: _phantom_case(seed, index, chosen, rng), seed, index)


def decide_prevalence(seed: int, index: int, options: CaseOptions) -> CaseOptions:
    """Settle once, on its own stream, whether the case bleeds: redrawing an invisible bleed
    must not turn a positive study into a normal one."""
    if options.lesions is not None:
        return options
    positive = stream(seed, index, Stream.PREVALENCE).random() < options.prevalence
    return replace(options, prevalence=1.0 if positive else 0.0)


def _fov_needed_mm(params: HeadParams, pose: HeadPose) -> float:
    """Diameter of the reconstruction circle that holds the posed head with 5 mm to spare."""
    shell = 1.3 * params.skull_mm + params.scalp_mm + 6.0
    angles = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    rings = []
    for z in np.linspace(-70.0, params.top + shell, 12):
        squeeze = np.sqrt(np.clip(1 - (max(z, 0.0) / (params.top + shell)) ** 2, 0.05, 1))
        half_y = np.where(np.sin(angles) < 0, params.front + 14.0, params.back) + shell
        rings.append(
            np.stack(
                [
                    (params.half_width + shell) * squeeze * np.cos(angles),
                    half_y * squeeze * np.sin(angles),
                    np.full_like(angles, z),
                ],
                axis=1,
            )
        )
    posed = pose.to_patient(np.concatenate(rings))
    return 2 * float(np.hypot(posed[:, 0], posed[:, 1]).max()) + 10.0


def _phantom_case(
    seed: int, index: int, options: CaseOptions, rng: np.random.Generator
) -> tuple[Case, int]:
    params = HeadParams.sample(rng)
    grid = params.grid()
    anatomy = build_anatomy(params, grid, rng)
    pose = HeadPose.sample(rng)
    protocol = ScanProtocol.sample(
        rng,
        _fov_needed_mm(params, pose),
        slice_mm=options.slice_mm,
        matrix=options.matrix,
        transfer_syntax=options.transfer_syntax,
        tilt_deg=options.gantry_tilt_deg,
    )
    mimics = add_calcifications_and_falx(anatomy, rng)
    site = Site(
        grid,
        anatomy.tissue.copy(),  # lesions keep the anatomy they were placed in
        anatomy.depth_mm,
        anatomy.infratentorial,
        slice_mm=protocol.slice_mm,
        tentorium=tentorium_height,
    )
    lesions = [draw_lesion(spec, site, rng) for spec in lesion_specs(rng, options)]
    shift = apply_mass_effect(anatomy, lesions)
    hu_grid = to_hu(anatomy, TissueHU.sample(rng), rng)
    mimics += add_beam_hardening(anatomy, hu_grid, rng)
    study = synthetic_study("phantom", seed, index, options.digest())
    spec = _series_spec(protocol, pose, params, derived_uid(study.study_uid, "axial"))
    renderer = Renderer(grid, pose, _planes(spec), protocol.slice_mm)
    image = renderer.render(hu_grid, AIR_HU)
    contrast = None
    if options.contrast:
        enhancement = _enhancement(anatomy, stream(seed, index, Stream.CONTRAST))
        contrast = renderer.render(enhancement, 0.0)
    best, owner = composite(image, lesions, renderer, site, rng)
    head = {
        "width_mm": round(2 * params.half_width, 1),
        "length_mm": round(params.front + params.back, 1),
        "skull_mm": round(params.skull_mm, 2),
        "atrophy": round(params.atrophy, 3),
    }
    case = labelled_case(seed, index, study, spec, protocol, image, (best, owner, lesions), head)
    case.mimics, case.midline_shift_mm = mimics, round(shift, 2)
    case.mimics += add_motion(image, rng)
    case.hu = add_noise(image, protocol, rng, _noise_boost(pose, spec))
    if contrast is not None:
        case.extras["contrast"] = case.hu + contrast
    return case, len(lesions)

"""Hemorrhages placed where they occur, sized to a volume stratum.

Each lesion is an analytic shape intersected with the compartment it lives in, evaluated as a
sub-voxel fraction on the site grid (a phantom head or a segmented real volume):

- IPH: a lobulated blob in parenchyma (deep nuclei, lobar or cerebellar), often with a
  hypodense oedema rim.
- EDH: a biconvex lens against the inner table that stops at the sutures of its bone.
- SDH: a crescent along the convexity that crosses sutures but not the falx; also along the
  falx and on the tentorium; acute (hyperdense) or subacute (near-isodense, the hard cases).
- SAH: blood filling the subarachnoid CSF (sulci, sylvian fissures, basal cisterns) in one or
  more regions.

Sizes follow the strata of the paper's Table 1 (:func:`ich.quantify.strata.stratum_of`):
each lesion's scale is iterated until its volume on the site grid meets the drawn target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np

from ich.phantom.anatomy import INTRACRANIAL, PARENCHYMA, Tissue
from ich.phantom.fields import HeadGrid, smooth_noise
from ich.schema import HemorrhageClass


class Kind(StrEnum):
    """What is drawn; EDH and SDH share one ground-truth class."""

    IPH = "IPH"
    EDH = "EDH"
    SDH = "SDH"
    SAH = "SAH"

    @property
    def hemorrhage_class(self) -> HemorrhageClass:
        return {
            Kind.IPH: HemorrhageClass.IPH,
            Kind.EDH: HemorrhageClass.EDH_SDH,
            Kind.SDH: HemorrhageClass.EDH_SDH,
            Kind.SAH: HemorrhageClass.SAH,
        }[self]

    @property
    def label(self) -> int:
        return self.hemorrhage_class.label


_TARGETS = {
    "punctate": (0.0015, 0.0035),
    "small": (0.05, 4.0),
    "medium": (7.0, 20.0),
    "large": (30.0, 65.0),
}


_SAH_THINNING = 1.5


class Site:
    """What lesion placement needs to know about a head, whatever it was made from."""

    def __init__(
        self,
        grid: HeadGrid,
        tissue: np.ndarray,
        depth_mm: np.ndarray,
        infratentorial: np.ndarray,
        centre_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
        slice_mm: float = 5.0,
        tentorium: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """``slice_mm`` is the thickness the site will be scanned at: punctate bleeds are
        drawn to fill about half a slice, or they would vanish into it. ``tentorium`` gives
        the height (z) of the tentorium over (x, y) where the site knows it."""
        self.grid = grid
        self.tentorium = tentorium
        self.slice_mm = slice_mm
        self.tissue = tissue
        self.depth_mm = depth_mm
        self.infratentorial = infratentorial
        self.centre = np.asarray(centre_mm, dtype=np.float32)

    def mask(self, tissues: tuple[Tissue, ...], box: tuple[slice, ...] | None = None) -> np.ndarray:
        """Where the tissue is one of ``tissues``, on ``box`` (the whole grid by default)."""
        tissue = self.tissue if box is None else self.tissue[box]
        return np.isin(tissue, np.asarray(tissues, dtype=np.uint8))

    def nearest(self, field: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Values of a site-grid field at the voxels nearest head-frame points (..., 3)."""
        index = np.rint(self.grid.index_of(points)).astype(np.intp)
        for axis, size in enumerate(field.shape):
            np.clip(index[..., axis], 0, size - 1, out=index[..., axis])
        return field[index[..., 0], index[..., 1], index[..., 2]]

    def allowed(self, tissues: tuple[Tissue, ...]) -> Callable[[np.ndarray], np.ndarray]:
        """Head-frame points (..., 3) -> whether the nearest voxel is one of ``tissues``."""
        codes = np.asarray(tissues, dtype=np.uint8)
        return lambda points: np.isin(self.nearest(self.tissue, points), codes)

    def candidates(self, where: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random voxel centre (x, y, z mm) among ``where``; raises when there is none."""
        flat = np.flatnonzero(where)
        if flat.size == 0:
            raise ValueError("no voxel of this head can host the requested lesion")
        k, i, j = np.unravel_index(flat[rng.integers(flat.size)], where.shape)
        z, y, x = self.grid.axes()
        return np.array([x.ravel()[j], y.ravel()[i], z.ravel()[k]], dtype=np.float32)


@dataclass(frozen=True)
class LesionSpec:
    """What to draw: class, target size and variant."""

    kind: Kind
    target_ml: float
    stratum: str
    variant: str
    acute: bool = True


Inside = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(z, y, x) head-frame mm -> bool: is the point inside the lesion shape."""


@dataclass(frozen=True)
class Exact:
    """A lesion shape the scanner can sample directly at full resolution."""

    inside: Inside
    allowed: tuple[Tissue, ...]
    lower_mm: np.ndarray
    upper_mm: np.ndarray


_EXACT_BELOW_ML = 1.0
"""Lesions smaller than this are rendered from their analytic shape: through the 1 mm
grid and a thick slice a few-voxel bleed would blur below half a voxel of blood."""


@dataclass
class Lesion:
    """A drawn lesion: fraction of blood (and oedema) per site-grid voxel inside ``box``."""

    spec: LesionSpec
    box: tuple[slice, slice, slice]
    blood: np.ndarray
    """float32 fraction in [0, 1] on ``box``."""
    hu: float
    oedema: np.ndarray | None = None
    oedema_drop_hu: float = 0.0
    exact: Exact | None = None
    """The analytic shape, for lesions too small to survive sampling through the grid."""

    def volume_ml(self, grid: HeadGrid) -> float:
        return float(self.blood.sum()) * grid.voxel_ml


def sample_spec(
    rng: np.random.Generator, kind: Kind | None = None, stratum: str | None = None
) -> LesionSpec:
    """A random lesion: class and stratum as given or drawn, variant and acuity drawn."""
    kind = kind or Kind(rng.choice([k.value for k in Kind], p=[0.35, 0.1, 0.3, 0.25]))
    if stratum is None:
        weights = {"punctate": 0.1, "small": 0.45, "medium": 0.3, "large": 0.15}
        stratum = str(rng.choice(list(weights), p=list(weights.values())))
    low, high = _TARGETS[stratum]
    target = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    variants = {
        Kind.IPH: (["deep", "lobar", "cerebellar"], [0.45, 0.45, 0.1]),
        Kind.EDH: (["convexity"], [1.0]),
        Kind.SDH: (["convexity", "falx", "tentorium"], [0.7, 0.15, 0.15]),
        Kind.SAH: (["convexity", "sylvian", "basal"], [0.4, 0.35, 0.25]),
    }[kind]
    variant = str(rng.choice(variants[0], p=variants[1]))
    if kind in (Kind.EDH, Kind.SDH) and stratum == "punctate":
        # Extra-axial blood is never a dot: the smallest are thin slivers.
        stratum = "small"
        target = float(np.exp(rng.uniform(np.log(0.02), np.log(0.5))))
    if kind is Kind.SAH and stratum == "large":
        variant = "basal"
    if kind is Kind.SAH and stratum == "punctate" and variant == "convexity":
        variant = "sylvian"  # a dot of blood needs a CSF space wider than a sulcus
    if kind is Kind.SDH and variant != "convexity" and stratum in ("medium", "large"):
        variant = "convexity"
    acute = not (kind is Kind.SDH and rng.random() < 0.25)
    return LesionSpec(kind, target, stratum, variant, acute)


Shape = Callable[[float], tuple[tuple[slice, slice, slice], np.ndarray]]
"""scale -> (box, blood fraction on the box)."""


def _subsamples(grid: HeadGrid, box: tuple[slice, ...], n: int) -> list[tuple[np.ndarray, ...]]:
    """Axes of ``n``**3 sub-voxel sample positions: partial volume for small lesions."""
    z, y, x = grid.axes(box)
    sx, sy, sz = grid.spacing_mm
    offsets = (np.arange(n) + 0.5) / n - 0.5
    return [
        (z + oz * sz, y + oy * sy, x + ox * sx)
        for oz in offsets
        for oy in offsets
        for ox in offsets
    ]


def _fraction(
    grid: HeadGrid,
    box: tuple[slice, ...],
    inside: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    subsample: int,
) -> np.ndarray:
    samples = _subsamples(grid, box, subsample)
    total = sum(
        np.broadcast_to(inside(*axes), _box_shape(box)).astype(np.float32) for axes in samples
    )
    return total / len(samples)


def _box_shape(box: tuple[slice, ...]) -> tuple[int, ...]:
    return tuple(s.stop - s.start for s in box)


def _fit(shape: Shape, target_ml: float, grid: HeadGrid, exponent: float = 1 / 3) -> tuple:
    """Scale the shape until its volume is within 15% of the target (or the best of 6 tries).

    Returns (box, blood fraction, scale).
    """
    scale, best = 1.0, None
    for _ in range(6):
        box, blood = shape(scale)
        volume = float(blood.sum()) * grid.voxel_ml
        error = abs(np.log(max(volume, 1e-9) / target_ml))
        if best is None or error < best[0]:
            best = (error, box, blood, scale)
        if error < 0.14 or volume <= 0:
            break
        scale *= (target_ml / volume) ** exponent
    assert best is not None
    return best[1:]


def _subsample_for(radius_mm: float, grid: HeadGrid) -> int:
    return 3 if radius_mm < 4 * max(grid.spacing_mm) else 1


def _punctate_stretch(spec: LesionSpec, site: Site, radius: float) -> float:
    """Elongation along z that makes a punctate bleed about half a slice tall."""
    if spec.stratum != "punctate":
        return 1.0
    return max(1.0, 0.45 * site.slice_mm / radius) ** (2 / 3)


def _iph(spec: LesionSpec, site: Site, rng: np.random.Generator) -> Lesion:
    grid = site.grid
    parenchyma = site.mask(PARENCHYMA)
    radius = (3 * spec.target_ml * 1000 / (4 * np.pi)) ** (1 / 3)
    depth = site.depth_mm
    if spec.variant == "cerebellar":
        where = parenchyma & site.infratentorial & (depth > min(radius, 25.0) * 0.6 + 3)
    elif spec.variant == "deep":
        where = site.mask((Tissue.DEEP_GREY,))
        if not where.any():  # a segmented real head has no nuclei: take central parenchyma
            where = parenchyma & ~site.infratentorial & (depth > 30)
    else:
        where = parenchyma & ~site.infratentorial & (depth > min(radius, 30.0) * 0.7 + 6)
    if not where.any():
        where = parenchyma & (depth > 10)
    _, _, x = grid.axes()
    off_midline = where & (np.abs(x - site.centre[0]) > 6.0)
    centre = site.candidates(off_midline if off_midline.any() else where, rng)
    stretch = _punctate_stretch(spec, site, radius)
    lobes = rng.normal(size=(int(rng.integers(2, 6)), 3))
    lobes /= np.linalg.norm(lobes, axis=1, keepdims=True)
    amplitude = rng.uniform(0.2, 0.7, len(lobes))
    allowed_tissues = (*PARENCHYMA, Tissue.CSF)
    # A hematoma stays in its hemisphere: the falx stops it at the midline.
    side = float(np.sign(round(float(centre[0] - site.centre[0]) / 2.0)))

    def radius_at(z: np.ndarray, y: np.ndarray, x: np.ndarray, r0: float) -> tuple:
        dx, dy, dz = x - centre[0], y - centre[1], (z - centre[2]) / stretch
        dist = np.sqrt(dx * dx + dy * dy + dz * dz) + 1e-6
        bump = sum(
            a * np.clip((dx * v[0] + dy * v[1] + dz * v[2]) / dist, 0, None) ** 3
            for a, v in zip(amplitude, lobes, strict=True)
        )
        across = side * (x - site.centre[0]) > -0.5
        return dist, np.where(across, r0 * (0.85 + bump), 0.0)

    def reach(scale: float) -> np.ndarray:
        return np.array([1.0, 1.0, stretch]) * radius * scale * (0.85 + amplitude.sum()) + 1.0

    def inside_at(scale: float) -> Inside:
        def inside(z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
            dist, limit = radius_at(z, y, x, radius * scale)
            return dist < limit

        return inside

    jitter_seed = int(rng.integers(2**31))

    def shape(scale: float) -> tuple:
        box = grid.box(tuple(centre - reach(scale)), tuple(centre + reach(scale)))
        allowed = site.mask(allowed_tissues, box)
        subsample = _subsample_for(radius * scale, grid)
        if radius * scale <= 4.0:
            return box, _fraction(grid, box, inside_at(scale), subsample) * allowed
        # Ragged margins: the boundary moves in and out with a fine random field.
        dist, limit = radius_at(*grid.axes(box), radius * scale)
        shape_ = np.broadcast_shapes(dist.shape, allowed.shape)
        ragged = smooth_noise(shape_, 3.0, np.random.default_rng(jitter_seed))
        return box, ((dist < limit * (1.0 + 0.12 * ragged)) & allowed).astype(np.float32)

    box, blood, scale = _fit(shape, spec.target_ml, grid)
    lesion = Lesion(spec, box, blood, float(rng.uniform(52, 85)))
    if spec.target_ml < _EXACT_BELOW_ML:
        lesion.exact = Exact(
            inside_at(scale), allowed_tissues, centre - reach(scale), centre + reach(scale)
        )
    if rng.random() < 0.65 and spec.stratum != "punctate":
        r0 = radius
        rim = rng.uniform(0.2, 0.6) * r0 + 1.0
        z, y, x = grid.axes(box)
        dist, limit = radius_at(z, y, x, r0)
        oedema = ((dist < limit + rim) & site.mask(PARENCHYMA, box)).astype(np.float32)
        lesion.oedema = np.clip(oedema - blood, 0, 1)
        lesion.oedema_drop_hu = float(rng.uniform(5, 13))
    return lesion


def _direction(site: Site, point: np.ndarray) -> np.ndarray:
    v = point - site.centre
    return v / max(float(np.linalg.norm(v)), 1e-6)


def _plate(x: np.ndarray, y: np.ndarray, z: np.ndarray, site: Site) -> np.ndarray:
    """Which skull bone (0-3, plus 4 for the left side of paired bones) a point lies under.

    Sutures: coronal (frontal/parietal), lambdoid (parietal/occipital), squamosal
    (parietal/temporal) and sagittal (left/right parietal).
    """
    cx, cy, cz = site.centre
    x, y, z = x - cx, y - cy, z - cz
    frontal = y < -18.0 - 0.25 * z
    occipital = y > 48.0 - 0.55 * z
    temporal = (z < 8.0) & (np.abs(x) > 38.0)
    plate = np.where(frontal, 0, np.where(occipital, 3, np.where(temporal, 2, 1)))
    return plate + 4 * ((x > 0) & (plate % 3 != 0))


def _surface_point(site: Site, rng: np.random.Generator, lateral: bool) -> np.ndarray:
    """A point just inside the inner table of the supratentorial convexity."""
    depth = site.depth_mm
    shell = (depth > 0) & (depth < 2.5) & ~site.infratentorial
    z, _, x = site.grid.axes()
    shell &= z > site.centre[2] - 15.0
    if lateral:
        shell &= np.abs(x - site.centre[0]) > 25.0
    return site.candidates(shell, rng)


def _extradural(spec: LesionSpec, site: Site, rng: np.random.Generator) -> Lesion:
    """EDH (lens, stops at sutures) or convexity SDH (crescent, stops at the falx)."""
    grid = site.grid
    edh = spec.kind is Kind.EDH
    anchor = _surface_point(site, rng, lateral=True)
    u0 = _direction(site, anchor)
    anchor_plate = _plate(*anchor[:, None], site)[0] if edh else None
    side = np.sign(anchor[0] - site.centre[0])
    base_alpha = np.radians(rng.uniform(14, 26) if edh else rng.uniform(22, 40))
    base_thick = 0.35 * spec.target_ml ** (1 / 3) * (6.0 if edh else 4.5)

    def geometry(scale: float) -> tuple[float, float]:
        """(angular radius, thickness); even the smallest layer is 2 mm thick."""
        alpha = min(base_alpha * scale**0.4, np.radians(35 if edh else 70))
        return alpha, max(base_thick * scale, 2.0)

    def inside_at(scale: float) -> Inside:
        alpha, thick = geometry(scale)

        def inside(zz: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
            points = np.stack(np.broadcast_arrays(xx, yy, zz), axis=-1)
            depth = site.nearest(site.depth_mm, points)
            supratentorial = ~site.nearest(site.infratentorial, points)
            dx, dy, dz = xx - site.centre[0], yy - site.centre[1], zz - site.centre[2]
            norm = np.sqrt(dx * dx + dy * dy + dz * dz) + 1e-6
            cos = np.clip((dx * u0[0] + dy * u0[1] + dz * u0[2]) / norm, -1, 1)
            t = np.arccos(cos) / alpha
            if edh:
                profile = thick * np.clip(1 - t * t, 0, None)
                ok = _plate(xx, yy, zz, site) == anchor_plate
            else:
                profile = thick * np.sqrt(np.clip(1 - t**4, 0, None))
                ok = np.sign(dx) == side
            return (depth > 0) & (depth < profile) & ok & supratentorial

        return inside

    def bounds(scale: float) -> tuple[np.ndarray, np.ndarray]:
        alpha, thick = geometry(scale)
        reach = np.sin(alpha) * 95.0 + thick + 4
        return anchor - reach, anchor + reach

    def shape(scale: float) -> tuple:
        box = grid.box(*(tuple(b) for b in bounds(scale)))
        subsample = _subsample_for(geometry(scale)[1] * 2, grid)
        return box, _fraction(grid, box, inside_at(scale), subsample)

    box, blood, scale = _fit(shape, spec.target_ml, grid, exponent=0.45)
    hu = float(rng.uniform(50, 78) if spec.acute else rng.uniform(32, 45))
    lesion = Lesion(spec, box, blood, hu)
    if spec.target_ml < _EXACT_BELOW_ML:
        lesion.exact = Exact(inside_at(scale), INTRACRANIAL, *bounds(scale))
    return lesion


def _layer_sdh(spec: LesionSpec, site: Site, rng: np.random.Generator) -> Lesion:
    """A thin subdural layer on one side of the falx, or on top of the tentorium."""
    grid = site.grid
    cx, cy, cz = site.centre
    side = float(rng.choice([-1.0, 1.0]))
    tentorium = spec.variant == "tentorium"
    if tentorium:
        assert site.tentorium is not None
        x0, y0 = cx + side * rng.uniform(15, 35), cy + rng.uniform(25, 50)
        c = np.array([x0, y0, float(site.tentorium(np.float32(x0), np.float32(y0)))])
        axes = np.array([1, 1, 0])  # the layer spreads in x and y
    else:
        c = np.array([cx, cy + rng.uniform(-40, 40), cz + rng.uniform(20, 45)])
        axes = np.array([0, 1, 1])  # in y and z
    c = c.astype(np.float32)

    def across(zz: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        if tentorium:
            return zz - site.tentorium(xx, yy)  # type: ignore[misc]
        return side * (xx - cx)

    # Thickness is drawn, the extent is fitted to the volume: a layer nearly parallel to the
    # slices (the tentorium) must stay thick enough to show on them.
    thick = rng.uniform(3.0, 4.5) if tentorium else rng.uniform(1.5, 3.0)

    def extent_of(scale: float) -> np.ndarray:
        return np.where(axes == 1, np.array([25.0, 25.0, 14.0]) * scale, 0.0)

    def bounds(scale: float) -> tuple[np.ndarray, np.ndarray]:
        reach = extent_of(scale) + (thick + 4) * (axes == 0) + 2
        return c - reach, c + reach

    def inside_at(scale: float) -> Inside:
        extent = extent_of(scale)

        def inside(zz: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
            taper = 1.0 - sum(
                ((v - c[i]) / extent[i]) ** 2 for i, v in enumerate((xx, yy, zz)) if axes[i]
            )
            level = across(zz, yy, xx)
            return (level > 0.5) & (level < 0.5 + thick * np.sqrt(np.clip(taper, 0, None)))

        return inside

    def shape(scale: float) -> tuple:
        box = grid.box(*(tuple(b) for b in bounds(scale)))
        allowed = site.depth_mm[box] > 0
        return box, _fraction(grid, box, inside_at(scale), 3) * allowed

    box, blood, scale = _fit(shape, spec.target_ml, grid, exponent=0.5)
    hu = float(rng.uniform(50, 76) if spec.acute else rng.uniform(34, 45))
    lesion = Lesion(spec, box, blood, hu)
    if spec.target_ml < _EXACT_BELOW_ML or not tentorium:
        # A falx layer is a few pixels across: sampled through the 1 mm grid it would blur.
        lesion.exact = Exact(inside_at(scale), INTRACRANIAL, *bounds(scale))
    return lesion


def _sah(spec: LesionSpec, site: Site, rng: np.random.Generator) -> Lesion:
    """Blood in the subarachnoid CSF within one or more balls (regions) of the head."""
    grid = site.grid
    csf = site.mask((Tissue.CSF,))
    z, y, x = grid.axes()
    variants = ["basal", "sylvian", "sylvian"] if spec.stratum == "large" else [spec.variant]
    anchors = []
    for variant in variants:
        where = csf & (site.depth_mm > 0)
        if variant == "basal":
            # The suprasellar and ambient cisterns, around and in front of the midbrain.
            cx, cy, cz = site.centre
            where &= (np.abs(z - cz + 18) < 8) & (np.abs(x - cx) < 16) & (np.abs(y - cy + 5) < 20)
        elif variant == "sylvian":
            side = (
                x - site.centre[0]
                if not anchors
                else -(x - site.centre[0]) * np.sign(anchors[-1][0] - site.centre[0] + 1e-6)
            )
            where &= (np.abs(z - site.centre[2] + 10) < 14) & (side > 20)
            where &= site.depth_mm > 8
        else:
            where &= (site.depth_mm < 12) & ~site.infratentorial
        if not where.any():
            where = csf & (site.depth_mm > 0)
        anchors.append(site.candidates(where, rng))
    base = 6.0 * spec.target_ml ** (1 / 3)
    stretch = _punctate_stretch(spec, site, 1.5)

    def bounds(scale: float) -> tuple[np.ndarray, np.ndarray]:
        radius = max(base * scale, 0.4)
        reach = np.array([radius, radius, radius * stretch])
        return np.min(anchors, axis=0) - reach, np.max(anchors, axis=0) + reach

    def inside_at(scale: float) -> Inside:
        radius = max(base * scale, 0.4)

        def inside(zz: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
            hit = np.zeros(np.broadcast_shapes(zz.shape, yy.shape, xx.shape), dtype=bool)
            for a in anchors:
                dz = (zz - a[2]) / stretch
                hit |= (xx - a[0]) ** 2 + (yy - a[1]) ** 2 + dz * dz < radius**2
            return hit

        return inside

    def shape(scale: float) -> tuple:
        box = grid.box(*(tuple(b) for b in bounds(scale)))
        allowed = site.mask((Tissue.CSF,), box)
        subsample = _subsample_for(max(base * scale, 0.4), grid)
        return box, _fraction(grid, box, inside_at(scale), subsample) * allowed

    # Thin sulcal blood loses about a third of its volume to partial volume on the series;
    # a dot of it, sampled exactly, gains from the 1 mm tissue map it is clipped to.
    exact = spec.target_ml < _EXACT_BELOW_ML
    factor = 0.5 if spec.stratum == "punctate" else _SAH_THINNING
    box, blood, scale = _fit(shape, spec.target_ml * factor, grid, exponent=0.4)
    lesion = Lesion(spec, box, blood, float(rng.uniform(42, 65)))
    if exact:
        lesion.exact = Exact(inside_at(scale), (Tissue.CSF,), *bounds(scale))
    return lesion


def draw_lesion(spec: LesionSpec, site: Site, rng: np.random.Generator) -> Lesion:
    """Place and shape one lesion on the site."""
    if spec.kind is Kind.IPH:
        return _iph(spec, site, rng)
    if spec.kind is Kind.SAH:
        return _sah(spec, site, rng)
    if spec.kind is Kind.SDH and spec.variant == "tentorium" and site.tentorium is None:
        spec = replace(spec, variant="convexity")  # the site has no tentorium to follow
    if spec.kind is Kind.SDH and spec.variant in ("falx", "tentorium"):
        return _layer_sdh(spec, site, rng)
    return _extradural(spec, site, rng)


def texture(lesion: Lesion, rng: np.random.Generator) -> np.ndarray:
    """Per-voxel blood HU of a lesion: clot heterogeneity of a few HU."""
    shape = lesion.blood.shape
    grain = smooth_noise(shape, 3.0, rng) if min(shape) > 1 else np.zeros(shape, np.float32)
    return (lesion.hu + 3.0 * grain).astype(np.float32)

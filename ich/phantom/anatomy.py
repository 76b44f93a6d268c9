"""A procedural head: skull, skull base, scalp, brain compartments and CSF spaces.

Every study draws its own head (size, shape, skull thickness, atrophy, ventricle size) and
builds it as a tissue map on the head-frame grid. Shapes are simple (ellipsoids, shells,
zero-sets of smooth noise for sulci) but placed where the real structures are, so lesions can
be put where they occur: parenchyma for IPH, against the inner table for EDH/SDH, in the
subarachnoid spaces for SAH. The head frame is x left, y posterior, z superior (LPS when the
head lies straight), origin near the centre of the brain.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from ich.phantom.fields import HeadGrid, smooth_noise


class Tissue(IntEnum):
    """Tissue classes of the phantom; their HU come from :mod:`ich.phantom.attenuation`."""

    AIR = 0
    SKIN = 1
    FAT = 2
    MUSCLE = 3
    CORTICAL_BONE = 4
    DIPLOE = 5
    AIR_CELLS = 6
    CSF = 7
    """Subarachnoid CSF: convexity, sulci, fissures, cisterns."""
    VENTRICLE = 8
    GREY = 9
    WHITE = 10
    DEEP_GREY = 11
    BRAINSTEM = 12
    CEREBELLUM = 13
    DURA = 14
    """Falx and tentorium."""
    CALCIFICATION = 15
    ORBIT_FAT = 16
    GLOBE = 17
    LENS = 18


PARENCHYMA = (Tissue.GREY, Tissue.WHITE, Tissue.DEEP_GREY, Tissue.BRAINSTEM, Tissue.CEREBELLUM)
BONE = (Tissue.CORTICAL_BONE, Tissue.DIPLOE)
INTRACRANIAL = (*PARENCHYMA, Tissue.CSF, Tissue.VENTRICLE, Tissue.DURA, Tissue.CALCIFICATION)
"""Everything inside the inner table."""


@dataclass(frozen=True)
class HeadParams:
    """The random shape of one head, in mm (head frame)."""

    half_width: float
    front: float
    back: float
    top: float
    bottom: float
    skull_mm: float
    scalp_mm: float
    atrophy: float
    """0 (young, tight sulci) to 1 (old: wide sulci and fissures, large ventricles)."""
    ventricle_scale: float
    asymmetry: tuple[float, float, float, float]
    sulcal_feature_mm: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> HeadParams:
        size = rng.uniform(0.9, 1.07)
        atrophy = float(rng.beta(1.6, 3.0))
        return cls(
            half_width=size * rng.uniform(64.0, 71.0),
            front=size * rng.uniform(80.0, 88.0),
            back=size * rng.uniform(86.0, 94.0),
            top=size * rng.uniform(66.0, 74.0),
            bottom=size * rng.uniform(58.0, 64.0),
            skull_mm=rng.uniform(3.8, 6.0),
            scalp_mm=rng.uniform(4.0, 6.5),
            atrophy=atrophy,
            ventricle_scale=rng.uniform(0.8, 1.05) + 0.55 * atrophy,
            asymmetry=tuple(rng.uniform(-0.03, 0.03, 4)),  # type: ignore[arg-type]
            sulcal_feature_mm=rng.uniform(9.0, 12.0),
        )

    def grid(self, step_mm: float = 1.0) -> HeadGrid:
        """The smallest head-frame grid holding this head down to the upper neck."""
        shell = 1.3 * self.skull_mm + self.scalp_mm
        lateral = self.half_width + shell + 6.0
        return HeadGrid(
            (-lateral, -(self.front + shell + 10.0), -80.0),
            (lateral, self.back + shell + 3.0, self.top + shell + 2.0),
            (step_mm, step_mm, step_mm),
        )


@dataclass
class Anatomy:
    """The built head: tissue map plus the fields lesion placement needs."""

    grid: HeadGrid
    params: HeadParams
    tissue: np.ndarray
    """uint8 (z, y, x) of :class:`Tissue`."""
    depth_mm: np.ndarray
    """float32 distance inward from the inner table (negative outside the cranial cavity)."""
    infratentorial: np.ndarray
    """bool (z, y, x): the posterior fossa below the tentorium."""


def inside_ellipsoid(
    axes: tuple[np.ndarray, ...],
    centre: tuple[float, float, float],
    radii: tuple[float, float, float],
    yaw_deg: float = 0.0,
) -> np.ndarray:
    """Boolean mask of an ellipsoid on open-grid axes (z, y, x), its x-y axes turned by
    ``yaw_deg`` about z."""
    z, y, x = axes
    (cx, cy, cz), (rx, ry, rz) = centre, radii
    dx, dy = x - cx, y - cy
    if yaw_deg:
        c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
        dx, dy = dx * c + dy * s, dy * c - dx * s
    return (dx / rx) ** 2 + (dy / ry) ** 2 + ((z - cz) / rz) ** 2 <= 1


def ellipsoid(
    grid: HeadGrid,
    centre: tuple[float, float, float],
    radii: tuple[float, float, float],
    yaw_deg: float = 0.0,
) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """Boxed boolean mask of an ellipsoid; the box keeps small shapes cheap."""
    c, r = np.asarray(centre), np.asarray(radii, dtype=float)
    if yaw_deg:
        r[:2] = r[:2].max()
    box = grid.box(tuple(c - r), tuple(c + r))
    return box, inside_ellipsoid(grid.axes(box), centre, radii, yaw_deg)


def paint(
    tissue: np.ndarray,
    box: tuple[slice, slice, slice],
    mask: np.ndarray,
    value: Tissue,
    over: tuple[Tissue, ...] | None = None,
) -> None:
    """Set ``value`` inside ``mask`` (optionally only over the given tissues)."""
    view = tissue[box]
    mask = np.broadcast_to(mask, view.shape)
    if over is not None:
        mask = mask & np.isin(view, np.asarray(over, dtype=np.uint8))
    view[mask] = value


def _bilateral(x: float, y: float, z: float) -> list[tuple[float, float, float]]:
    return [(x, y, z), (-x, y, z)]


def _cranial_depth(grid: HeadGrid, p: HeadParams, r: np.ndarray) -> np.ndarray:
    """Radial distance inward from the inner table of a perturbed ovoid cavity.

    ``rho`` is homogeneous of degree one along rays, so ``r / rho`` is the inner-table radius
    in that direction and ``r / rho - r`` the exact radial depth.
    """
    z, y, x = grid.axes()
    ay = np.where(y < 0, p.front, p.back).astype(np.float32)
    az = np.where(z > 0, p.top, p.bottom).astype(np.float32)
    a1, a2, a3, a4 = (np.float32(a) for a in p.asymmetry)
    inv_r = 1.0 / r
    shape = 1.0 + ((a1 * x * y + a2 * y * z + a3 * x * z) * inv_r + a4 * x) * inv_r
    rho = np.sqrt((x / np.float32(p.half_width)) ** 2 + (y / ay) ** 2 + (z / az) ** 2) * shape
    return r / rho - r


def _petrous_line(x: np.ndarray) -> np.ndarray:
    """y of the petrous ridge: it runs from near the midline forward to the mastoids back."""
    return 2.0 + 0.42 * np.abs(x)


def _floor(grid: HeadGrid, p: HeadParams) -> np.ndarray:
    """z of the cranial floor (anterior, middle and posterior fossae) over (y, x)."""
    _, y, x = grid.axes()
    y, x = y[0], x[0]
    anterior = 1.0 / (1.0 + np.exp((y + 0.42 * p.front) / 4.0))
    posterior = 1.0 / (1.0 + np.exp(-(y - _petrous_line(x)) / 3.0))
    middle = np.clip(1.0 - anterior - posterior, 0.0, 1.0)
    sella = -28.0 - 14.0 * (1.0 - np.exp(-((x / 16.0) ** 2)))
    # Orbital roofs bulge up on either side of the lower cribriform plate.
    orbital = -25.0 + 7.0 * np.exp(-(((np.abs(x) - 28.0) / 13.0) ** 2))
    floor = anterior * orbital + middle * sella + posterior * -200.0
    ridge = 14.0 * np.exp(-(((y - _petrous_line(x)) / 3.5) ** 2)) * (np.abs(x) > 14)
    return (floor + ridge).astype(np.float32)


def tentorium_height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """z of the tentorium over head-frame (x, y): a tent from the incisura to the occiput."""
    return (-8.0 - 0.28 * np.abs(x) - 0.2 * np.clip(y - 10.0, 0.0, None)).astype(np.float32)


def _tentorium(grid: HeadGrid) -> np.ndarray:
    _, y, x = grid.axes()
    return tentorium_height(x[0], y[0])


def build_anatomy(p: HeadParams, grid: HeadGrid, rng: np.random.Generator) -> Anatomy:
    """Build the tissue map of one head."""
    z, y, x = grid.axes()
    r = np.sqrt(x * x + y * y + z * z) + np.float32(1e-3)
    radial = _cranial_depth(grid, p, r)
    floor = _floor(grid, p)[None]
    above_floor = z - floor
    depth = np.minimum(radial, above_floor)
    canal = ((x / 14.0) ** 2 + ((y - 26.0) / 17.0) ** 2 <= 1.0) & (z < -40.0)
    depth = np.where(canal & (depth < 3.0) & (radial > -p.skull_mm), 3.0, depth)

    tissue = np.zeros(depth.shape, dtype=np.uint8)
    _scalp_and_skull(tissue, r, radial, depth, above_floor, p, grid)
    tent = _tentorium(grid)[None]
    infratentorial = (depth > 0) & (y > _petrous_line(x)) & (z < tent)
    _brain(tissue, depth, infratentorial, p, grid, rng)
    _dura(tissue, depth, infratentorial, tent, p, grid)
    _skull_base(tissue, depth, p, grid, rng)
    return Anatomy(grid, p, tissue, depth.astype(np.float32), infratentorial)


def _scalp_and_skull(
    tissue: np.ndarray,
    r: np.ndarray,
    radial: np.ndarray,
    depth: np.ndarray,
    above_floor: np.ndarray,
    p: HeadParams,
    grid: HeadGrid,
) -> None:
    """Skull (tables and diploe), skull base plate, scalp layers and the neck below.

    Only the shell around the cranial cavity is classified voxel by voxel, on flat index
    arrays: a fifth of the grid, which is where most of the build time would otherwise go.
    """
    z, y, x = grid.axes()
    neck = ((x / (p.half_width + 6.0)) ** 2 + (y / (0.5 * (p.front + p.back) + 4.0)) ** 2) < (
        1.0 + z / 160.0
    )
    tissue[neck & (z < -8.0)] = Tissue.MUSCLE
    reach = 1.3 * p.skull_mm + p.scalp_mm + 6.0
    shell = np.flatnonzero((radial > -reach) & (depth <= 0))
    k, i, j = np.unravel_index(shell, tissue.shape)
    zs, ys, xs = z.ravel()[k], y.ravel()[i], x.ravel()[j]
    rs = r.reshape(-1)[shell]
    out = -radial.reshape(-1)[shell]
    floor = above_floor.reshape(-1)[shell]
    # Thicker at the occiput and frontal bone, thin temporal squama; temporalis laterally.
    lateral = (xs / rs) ** 2
    skull = p.skull_mm * (1.0 + 0.2 * (ys / rs) ** 2 - 0.4 * lateral * (np.abs(zs) < 35))
    scalp = p.scalp_mm + 5.0 * lateral * np.exp(-(((zs + 5.0) / 25.0) ** 2))
    flat = tissue.reshape(-1)
    flat[shell] = np.select(
        [
            (floor > -np.where(ys < -0.42 * p.front, 2.5, 6.0)) & (floor <= 0) & (out < skull),
            # Well below the cranial floor the ovoid's shell is face and neck, not skull.
            (out < 0) | ((floor < -8.0) & (out < skull + scalp)),
            (out > 1.6) & (out < skull - 1.6),
            out < skull,
            out < skull + 0.55 * scalp,
            out < skull + scalp - 2.2,
            (out < skull + scalp) & (zs >= -8.0),
        ],
        [
            Tissue.CORTICAL_BONE,
            Tissue.MUSCLE,
            Tissue.DIPLOE,
            Tissue.CORTICAL_BONE,
            Tissue.MUSCLE,
            Tissue.FAT,
            Tissue.SKIN,
        ],
        default=flat[shell],
    )
    tissue[depth > 0] = Tissue.WHITE


def _brain(
    tissue: np.ndarray,
    depth: np.ndarray,
    infratentorial: np.ndarray,
    p: HeadParams,
    grid: HeadGrid,
    rng: np.random.Generator,
) -> None:
    cavity = depth > 0
    supra = cavity & ~infratentorial
    # Cortex: grey matter near the surface and around sulci (zero-set of a smooth field).
    # Elongated along z: sulci are sheets running in from the surface, so at the convexity
    # (where axial slices cut them) they stay visible through a thick slice.
    feature = p.sulcal_feature_mm / grid.spacing_mm[0]
    field = smooth_noise(tissue.shape, (2.2 * feature, feature, feature), rng)
    sulcal_depth = 14.0 + 6.0 * p.atrophy
    near_surface = depth < sulcal_depth + 2.0
    ribbon = np.abs(field)
    sulcus_w = 0.15 + 0.15 * p.atrophy
    grey = supra & ((depth < 6.5) | (near_surface & (ribbon < sulcus_w + 0.32)))
    tissue[grey] = Tissue.GREY
    sas = 0.8 + 2.2 * p.atrophy
    sulci = supra & (depth < sulcal_depth) & (ribbon < sulcus_w * (1.2 - depth / sulcal_depth))
    tissue[sulci | (supra & (depth < sas))] = Tissue.CSF
    # Cerebellum: folia are a finer version of the same idea.
    tissue[infratentorial] = Tissue.CEREBELLUM
    fossa = grid.box((-p.half_width, 0.0, -p.bottom), (p.half_width, p.back, 0.0))
    folia = np.abs(smooth_noise(tissue[fossa].shape, 4.0 / grid.spacing_mm[0], rng)) < 0.12
    cleft = (folia & (depth[fossa] < 14.0)) | (depth[fossa] < 0.6 + 1.2 * p.atrophy)
    paint(tissue, fossa, cleft & infratentorial[fossa], Tissue.CSF)
    _fissures(tissue, supra, field, p, grid)
    _deep_structures(tissue, p, grid)
    _ventricles(tissue, p, grid)
    _cisterns(tissue, p, grid)


def _fissures(
    tissue: np.ndarray, supra: np.ndarray, field: np.ndarray, p: HeadParams, grid: HeadGrid
) -> None:
    """Interhemispheric and sylvian fissures; ``field`` makes the sylvian ones wander."""
    z, y, x = grid.axes()
    half = 0.4 + 1.0 * p.atrophy
    callosum = (z > 24.0) | (np.abs(y) > 48.0)
    interhemispheric = supra & callosum & (np.abs(x) < half + 0.8)
    tissue[interhemispheric] = Tissue.GREY
    tissue[interhemispheric & (np.abs(x) < half)] = Tissue.CSF
    # Sylvian fissures: oblique clefts from the temporal surface towards the suprasellar cistern.
    for side in (1.0, -1.0):
        u = np.array([0.93, -0.37])
        n = np.array([0.37, 0.93])
        px, py = side * x, y
        along = (px - 22.0) * u[0] + (py + 14.0) * u[1]
        across = (px - 22.0) * n[0] + (py + 14.0) * n[1] + 3.5 * field
        width = 0.6 + 1.6 * p.atrophy
        region = supra & (along > -4) & (along < 45) & (z > -28) & (z < 4 - 0.15 * along)
        tissue[region & (np.abs(across) < width + 1.5)] = Tissue.GREY
        tissue[region & (np.abs(across) < width)] = Tissue.CSF


def _deep_structures(tissue: np.ndarray, p: HeadParams, grid: HeadGrid) -> None:
    inside = (Tissue.WHITE, Tissue.GREY)
    for centre, radii in (
        ((13.0, -17.0, 10.0), (5.5, 10.0, 9.0)),  # caudate head
        ((22.0, -4.0, 1.0), (7.0, 16.0, 10.0)),  # lentiform nucleus
        ((10.0, 9.0, 4.0), (8.5, 12.5, 9.0)),  # thalamus
    ):
        for c in _bilateral(*centre):
            paint(tissue, *ellipsoid(grid, c, radii), Tissue.DEEP_GREY, over=inside)
    for centre, radii in (
        ((0.0, 6.0, -11.0), (12.0, 11.0, 8.0)),  # midbrain
        ((0.0, 12.0, -31.0), (15.0, 13.0, 12.0)),  # pons
        ((0.0, 20.0, -52.0), (9.0, 8.0, 14.0)),  # medulla
    ):
        paint(tissue, *ellipsoid(grid, centre, radii), Tissue.BRAINSTEM)


def _ventricles(tissue: np.ndarray, p: HeadParams, grid: HeadGrid) -> None:
    """Lateral ventricles as a butterfly: frontal horns splayed forward and out, bodies,
    atria and occipital horns splayed back and out; then the temporal horns, third and
    fourth ventricles."""
    s = p.ventricle_scale
    brain = (*PARENCHYMA, Tissue.CSF)
    for centre, radii, splay in (
        ((4.0 + 5.0 * s, 0.0, 19.0), (5.5 * s, 24.0, 5.0 * s), 6.0),  # body
        ((5.0 + 4.0 * s, -20.0, 12.0), (4.5 * s, 11.0, 8.0 * s), -25.0),  # frontal horn
        ((14.0 + 5.0 * s, 24.0, 11.0), (7.0 * s, 11.0, 8.0 * s), 25.0),  # atrium
        ((20.0 + 3.0 * s, 40.0, 9.0), (3.0 * s, 10.0, 4.0 * s), 20.0),  # occipital horn
        ((29.0, -6.0, -20.0), (2.5 * s, 13.0, 3.0 * s), -10.0),  # temporal horn
    ):
        for side, c in zip((1.0, -1.0), _bilateral(*centre), strict=True):
            box, inside = ellipsoid(grid, c, radii, yaw_deg=-side * splay)
            paint(tissue, box, inside, Tissue.VENTRICLE, over=brain)
    for centre, radii in (
        ((0.0, 2.0, 1.0), (1.2 + 1.6 * s, 13.0, 8.0)),  # third ventricle
        ((0.0, 28.0, -36.0), (6.0 * s, 3.5, 6.0)),  # fourth ventricle
    ):
        paint(tissue, *ellipsoid(grid, centre, radii), Tissue.VENTRICLE, over=brain)


def _cisterns(tissue: np.ndarray, p: HeadParams, grid: HeadGrid) -> None:
    grow = 1.0 + 0.5 * p.atrophy
    brain = PARENCHYMA
    for centre, radii in (
        ((0.0, -17.0, -24.0), (13.0, 8.0, 4.5)),  # suprasellar
        ((0.0, 24.0, -6.0), (8.0, 6.0, 6.0)),  # quadrigeminal
        ((0.0, -3.0, -33.0), (11.0, 3.5, 11.0)),  # prepontine
        ((0.0, 48.0, -50.0), (12.0, 10.0, 7.0)),  # cisterna magna
    ):
        scaled = tuple(r * grow for r in radii)
        paint(tissue, *ellipsoid(grid, centre, scaled), Tissue.CSF, over=brain)
    # Ambient cisterns: a thin ring around the midbrain.
    box, outer = ellipsoid(grid, (0.0, 6.0, -11.0), (14.0 * grow, 13.0 * grow, 6.0))
    inner = inside_ellipsoid(grid.axes(box), (0.0, 6.0, -11.0), (12.0, 11.0, 8.0))
    paint(tissue, box, outer & ~inner, Tissue.CSF, over=brain)


def _dura(
    tissue: np.ndarray,
    depth: np.ndarray,
    infratentorial: np.ndarray,
    tent: np.ndarray,
    p: HeadParams,
    grid: HeadGrid,
) -> None:
    z, y, x = grid.axes()
    cavity = depth > 0
    callosum = (z > 26.0) | (np.abs(y) > 50.0)
    tissue[cavity & callosum & (np.abs(x) < 0.7) & ~infratentorial & (z > tent)] = Tissue.DURA
    behind = (y > _petrous_line(x)) & ((np.abs(x) > 13.0) | (y > 28.0))
    tissue[cavity & behind & (np.abs(z - tent) < 0.6)] = Tissue.DURA


def _skull_base(
    tissue: np.ndarray,
    depth: np.ndarray,
    p: HeadParams,
    grid: HeadGrid,
    rng: np.random.Generator,
) -> None:
    """Orbits, sinuses, mastoid air cells and the petrous bone below the cranial floor."""
    below = (Tissue.MUSCLE, Tissue.FAT, Tissue.CORTICAL_BONE, Tissue.DIPLOE)
    fy = -p.front
    face = ellipsoid(grid, (0.0, fy + 12.0, -52.0), (0.8 * p.half_width, 30.0, 34.0))
    paint(tissue, *face, Tissue.MUSCLE, over=(Tissue.AIR,))
    for c in _bilateral(31.0, fy + 6.0, -36.0):
        paint(tissue, *ellipsoid(grid, c, (15.0, 22.0, 12.0)), Tissue.ORBIT_FAT, over=below)
    for c in _bilateral(31.0, fy - 2.0, -36.0):
        paint(tissue, *ellipsoid(grid, c, (11.5, 11.5, 11.5)), Tissue.GLOBE, over=below)
        paint(tissue, *ellipsoid(grid, (c[0], c[1] - 10.0, c[2]), (4.0, 1.8, 4.0)), Tissue.LENS)
    for centre, radii, porous in (
        ((0.0, fy + 16.0, -38.0), (9.0, 20.0, 12.0), True),  # ethmoid / nasal
        ((0.0, -28.0, -45.0), (12.0, 10.0, 9.0), False),  # sphenoid sinus
        ((0.0, fy + 2.0, -8.0), (13.0, 5.0, 9.0), False),  # frontal sinus
        ((51.0, 22.0, -44.0), (10.0, 12.0, 11.0), True),  # mastoid
        ((-51.0, 22.0, -44.0), (10.0, 12.0, 11.0), True),
    ):
        box, inside = ellipsoid(grid, centre, radii)
        if porous:
            inside = inside & (smooth_noise(inside.shape, 3.0 / grid.spacing_mm[0], rng) > -0.2)
        paint(tissue, box, inside, Tissue.AIR_CELLS, over=below)
    # Petrous ridges: dense wedges along the ridge, below the middle/posterior fossa border.
    z, y, x = grid.axes()
    ridge = (np.abs(y - _petrous_line(x)) < 6.0) & (np.abs(x) > 14.0) & (np.abs(x) < 58.0)
    petrous = ridge & (z < -16.0) & (z > -52.0) & (depth <= 0)
    tissue[petrous & np.isin(tissue, np.asarray(below, dtype=np.uint8))] = Tissue.CORTICAL_BONE

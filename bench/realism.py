"""Tissue statistics of the real head CT samples: the reference synthetic studies must match.

Loads every real sample in ../shared/data/real that carries HU (CQ500 and GE series through
the project's DICOM ingestion, the RSNA and CT-ICH single slices, the DeepBleed NIfTI), times
each load, measures each with :func:`ich.phantom.realism.tissue_statistics` and prints a
Markdown table. ``--sheet PATH`` also writes a PNG contact sheet of representative slices at
one physical scale; nothing is written otherwise. The functions are importable so that the
synthetic side can be measured by the same code and added to the same table and sheet.

    .venv/bin/python bench/realism.py [--sheet realism.png]
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont

from ich.dicom import load, scan
from ich.dicom.pixels import decode_hu
from ich.nifti import read_volume_nifti
from ich.phantom.generate import CaseOptions, synthesize
from ich.phantom.real_background import RealBackgrounds
from ich.phantom.realism import TissueStats, tissue_statistics

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"

SINGLE_SLICE_MM = 5.0
"""Slice thickness assumed for single slices without the tag (RSNA 2019 and CT-ICH are 5 mm);
it only scales their intracranial volume."""
CTICH_PIXEL_MM = 0.45
"""CT-ICH slices have no spacing tags; the dataset's README gives about 0.45 mm."""
CTICH_HEMORRHAGE = 32767
"""CT-ICH mask value of hemorrhage (background is -32768)."""
SLAB_MM = 5.0
"""Thickness the thin CQ500 series is averaged to, to compare with 5 mm series."""
FIELD_OF_VIEW_MM = 240.0
"""Width every contact-sheet tile shows, so that heads appear at their true relative size."""


@dataclass(frozen=True)
class RealSample:
    """One real head CT, as HU (z, y, x) inferior to superior in radiological orientation."""

    name: str
    hu: np.ndarray
    spacing_mm: tuple[float, float, float]
    """(z, y, x) voxel size."""
    description: str
    blood_mask: np.ndarray | None = None
    load_seconds: float | None = None
    """Time to read and decode the sample from disk; None for one derived from another."""


def _timed(read: Callable[[], RealSample]) -> RealSample:
    start = time.perf_counter()
    sample = read()
    return replace(sample, load_seconds=time.perf_counter() - start)


def _series(name: str, folder: Path, description: str) -> RealSample:
    volume = load(folder)
    return RealSample(name, volume.hu, volume.spacing_mm, description)


def _slab(sample: RealSample, thickness_mm: float) -> RealSample:
    """``sample`` averaged over consecutive slices into slabs about ``thickness_mm`` thick."""
    count = max(1, round(thickness_mm / sample.spacing_mm[0]))
    slabs = sample.hu.shape[0] // count
    hu = sample.hu[: slabs * count].astype(np.float32)
    hu = hu.reshape(slabs, count, *hu.shape[1:]).mean(axis=1)
    z = sample.spacing_mm[0] * count
    return RealSample(
        f"{sample.name} {z:.1f} mm slabs",
        hu,
        (z, *sample.spacing_mm[1:]),
        f"{sample.name} averaged {count} slices at a time",
    )


def _rsna(path: Path) -> RealSample:
    header = scan(path).headers[0]
    labels = path.stem.split("_")[2:]
    thickness = header.slice_thickness or SINGLE_SLICE_MM
    return RealSample(
        f"rsna {path.stem.split('_')[1]}",
        decode_hu(header)[None],
        (thickness, *header.pixel_spacing),
        "RSNA 2019 slice: " + (", ".join(labels) or "no label"),
    )


def _ctich_labels(folder: Path) -> dict[str, str]:
    with (folder / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    kinds = ("Intraventricular", "Intraparenchymal", "Subarachnoid", "Epidural", "Subdural")
    return {row["file"]: ", ".join(k for k in kinds if row[k] == "1") for row in rows}


def _ctich(path: Path, labels: dict[str, str]) -> RealSample:
    hu = pydicom.dcmread(path).pixel_array.astype(np.int16)  # stored as HU already
    mask = pydicom.dcmread(path.parents[1] / "masks" / path.name).pixel_array
    return RealSample(
        f"ctich {path.stem}",
        hu[None],
        (SINGLE_SLICE_MM, CTICH_PIXEL_MM, CTICH_PIXEL_MM),
        f"CT-ICH slice: {labels.get(path.name) or 'no label'} (spacing assumed)",
        (mask == CTICH_HEMORRHAGE)[None],
    )


def _deepbleed(path: Path) -> RealSample:
    hu, affine_lps = read_volume_nifti(path)
    # Turn each axis to the project's order (inferior to superior, anterior to posterior,
    # patient right to left) where the file runs it the other way.
    for axis in range(3):
        if affine_lps[:3, axis][np.argmax(np.abs(affine_lps[:3, axis]))] < 0:
            hu = np.flip(hu, axis)
    z, y, x = (float(v) for v in np.linalg.norm(affine_lps[:3, :3], axis=0))
    return RealSample(
        "deepbleed",
        hu.astype(np.float32),
        (z, y, x),
        "DeepBleed NIfTI: skull stripped (bone and background set to 0), HU clipped -66..320",
    )


def real_samples(root: Path = REAL) -> list[RealSample]:
    """Every real sample with HU, each timed as it loads; [] when ``root`` is absent."""
    if not root.is_dir():
        return []
    cq500 = _timed(
        lambda: _series(
            "cq500",
            root / "cq500" / "dicom",
            "CQ500-CT-0 thin series: 0.625 mm, JPEG Lossless, 8.5 deg tilt corrected",
        )
    )
    samples = [
        cq500,
        _slab(cq500, SLAB_MM),
        _timed(
            lambda: _series(
                "ge tilt",
                root / "ge_head_gantry_tilt",
                "GE HiSpeed: 4 mm, 18.5 deg tilt corrected, uneven gaps resampled",
            )
        ),
    ]
    samples += [_timed(lambda p=p: _rsna(p)) for p in sorted((root / "rsna_dicom").glob("*.dcm"))]
    labels = _ctich_labels(root / "ctich_slices")
    images = sorted((root / "ctich_slices" / "images").glob("*.dcm"))
    samples += [_timed(lambda p=p: _ctich(p, labels)) for p in images]
    samples += [
        _timed(lambda p=p: _deepbleed(p))
        for p in sorted((root / "deepbleed_volume").glob("*.nii*"))
    ]
    return samples


def _cell(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def stats_table(rows: list[tuple[str, TissueStats]]) -> str:
    """A Markdown table of ``(name, stats)`` rows, HU rounded to what the numbers support."""
    header = (
        "| sample | slices | ICV mL | parenchyma | GM | WM | D | CSF | CSF % | bone "
        "| noise px | noise ROI | blood p10 / p50 / p90 |"
    )
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    for name, s in rows:
        blood = (
            "-"
            if s.blood_median_hu is None
            else f"{s.blood_p10_hu:.0f} / {s.blood_median_hu:.0f} / {s.blood_p90_hu:.0f}"
        )
        cells = [
            name,
            str(s.slices),
            _cell(s.intracranial_volume_ml),
            _cell(s.parenchyma_median_hu),
            _cell(s.grey_matter_hu, 1),
            _cell(s.white_matter_hu, 1),
            _cell(s.grey_white_separation, 1),
            _cell(s.csf_median_hu),
            _cell(None if s.csf_fraction is None else 100 * s.csf_fraction, 1),
            _cell(s.bone_median_hu) if s.skull else "no skull",
            _cell(s.noise_sd_hu, 1),
            _cell(s.roi_noise_sd_hu, 1),
            blood,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _tile(hu: np.ndarray, pixel_mm: float, window: tuple[float, float], size: int) -> Image.Image:
    level, width = window
    grey = np.clip((hu - (level - width / 2)) / width * 255.0, 0, 255).astype(np.uint8)
    scale = pixel_mm * size / FIELD_OF_VIEW_MM
    shape = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
    image = Image.fromarray(grey).resize(shape, Image.Resampling.LANCZOS)
    tile = Image.new("L", (size, size))
    tile.paste(image, ((size - shape[0]) // 2, (size - shape[1]) // 2))
    return tile


def contact_sheet(
    tiles: list[tuple[str, np.ndarray, float]],
    path: str | Path,
    window: tuple[float, float] = (40.0, 80.0),
    tile_px: int = 256,
    columns: int = 4,
) -> None:
    """Write ``(title, 2D HU, pixel mm)`` tiles as one PNG, all at FIELD_OF_VIEW_MM across
    ``tile_px``, in the (level, width) ``window``, titled."""
    rows = -(-len(tiles) // columns)
    sheet = Image.new("L", (columns * tile_px, rows * tile_px))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=max(10, tile_px // 20))
    for index, (title, hu, pixel_mm) in enumerate(tiles):
        x, y = index % columns * tile_px, index // columns * tile_px
        sheet.paste(_tile(hu, pixel_mm, window, tile_px), (x, y))
        draw.text((x + 4, y + 2), title, fill=255, font=font, stroke_width=2, stroke_fill=0)
    sheet.save(path)


def _brain_level(hu: np.ndarray) -> int:
    """The slice with the most voxels in the parenchymal range: the widest brain section."""
    return int(np.argmax(((hu >= 15) & (hu <= 55)).sum(axis=(1, 2))))


def representative_tiles(samples: list[RealSample]) -> list[tuple[str, np.ndarray, float]]:
    """Brain-level CQ500 (a 5 mm slab), GE and DeepBleed mid slices, two RSNA, two CT-ICH."""
    by_name = {s.name: s for s in samples}
    tiles = []
    if "cq500" in by_name:
        cq500 = by_name["cq500"]
        count = round(SLAB_MM / cq500.spacing_mm[0])
        start = _brain_level(cq500.hu) - count // 2
        slab = cq500.hu[start : start + count].astype(np.float32).mean(axis=0)
        tiles.append(
            (f"cq500 {count * cq500.spacing_mm[0]:.1f} mm slab", slab, cq500.spacing_mm[2])
        )
    for name in ("ge tilt", "deepbleed"):
        if name in by_name:
            sample = by_name[name]
            mid = sample.hu[sample.hu.shape[0] // 2]
            tiles.append((f"{name} mid slice", mid, sample.spacing_mm[2]))
    for name in ("rsna 0000f1657", "rsna afb1bcdab", "ctich 049_21", "ctich 075_23"):
        if name in by_name:
            sample = by_name[name]
            tiles.append((name, sample.hu[0], sample.spacing_mm[2]))
    return tiles


def synthetic_samples(count: int, seed: int = 2026) -> list[RealSample]:
    """Phantom studies (5 mm, every one with hemorrhage) and, when the real samples are
    present, two real-background studies: measured exactly like the real ones."""
    options = CaseOptions(slice_mm=5.0, prevalence=1.0, gantry_tilt_deg=0.0)
    cases = [synthesize(seed, index, options) for index in range(count)]
    if (REAL / "cq500").is_dir():
        backgrounds = RealBackgrounds.shared(REAL)
        cases += [backgrounds.synthesize(seed, index, options) for index in range(2)]
    samples = []
    for case in cases:
        kinds = "+".join(sorted({i.kind for i in case.instances})) or "normal"
        name = f"synth {case.index} {kinds}"
        if case.background != "phantom":
            name = f"{case.background} {kinds}"
        pixel = case.spec.pixel_spacing_mm
        samples.append(
            RealSample(
                name,
                case.hu,
                (case.spec.table_increment_mm, pixel, pixel),
                f"{case.background}, {len(case.instances)} bleed(s)",
                blood_mask=case.label > 0 if case.instances else None,
            )
        )
    return samples


def _lesion_level(sample: RealSample) -> int:
    if sample.blood_mask is None or not sample.blood_mask.any():
        return _brain_level(sample.hu)
    return int(np.argmax(sample.blood_mask.sum(axis=(1, 2))))


def synthetic_tiles(samples: list[RealSample]) -> list[tuple[str, np.ndarray, float]]:
    """Each synthetic study at its largest bleed, plus skull-base and vertex levels of one."""
    tiles = [(s.name, s.hu[_lesion_level(s)], s.spacing_mm[2]) for s in samples]
    first = samples[0]
    for label, fraction in (("skull base", 0.2), ("vertex", 0.75)):
        level = round(fraction * (first.hu.shape[0] - 1))
        tiles.append((f"{first.name.split()[0]} {first.name.split()[1]} {label}",
                      first.hu[level], first.spacing_mm[2]))  # fmt: skip
    return tiles


def real_level_tiles(samples: list[RealSample]) -> list[tuple[str, np.ndarray, float]]:
    """The CQ500 series averaged into 5 mm slabs at skull-base and vertex levels."""
    cq500 = next((s for s in samples if s.name == "cq500"), None)
    if cq500 is None:
        return []
    slabs = _slab(cq500, SLAB_MM)
    return [
        (f"cq500 slab {label}", slabs.hu[round(f * (slabs.hu.shape[0] - 1))], slabs.spacing_mm[2])
        for label, f in (("skull base", 0.25), ("vertex", 0.75))
    ]


def _summary(rows: list[tuple[str, TissueStats]], names: list[str]) -> str:
    """Medians of the key numbers over the volume samples of each group."""
    groups: dict[str, list[TissueStats]] = {}
    for name, stats in rows:
        for group in names:
            if name.startswith(group) and stats.slices > 1:
                groups.setdefault(group, []).append(stats)
    fields = (
        ("parenchyma HU", "parenchyma_median_hu"),
        ("CSF HU", "csf_median_hu"),
        ("bone HU", "bone_median_hu"),
        ("noise px HU", "noise_sd_hu"),
        ("noise ROI HU", "roi_noise_sd_hu"),
        ("blood median HU", "blood_median_hu"),
    )
    lines = ["| | " + " | ".join(groups) + " |", "|---" * (len(groups) + 1) + "|"]
    for label, field in fields:
        cells = []
        for members in groups.values():
            values = [getattr(m, field) for m in members if getattr(m, field) is not None]
            cells.append(f"{np.median(values):.1f}" if values else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sheet", type=Path, help="also write a PNG contact sheet here")
    parser.add_argument("--synthetic", type=int, default=6, help="phantom studies to compare")
    parser.add_argument("--docs", type=Path, help="write realism.png and realism.md here")
    args = parser.parse_args()
    samples = real_samples()
    if not samples:
        raise SystemExit(f"no real samples at {REAL}")
    start = time.perf_counter()
    synthetic = synthetic_samples(args.synthetic)
    print(f"{len(synthetic)} synthetic studies in {time.perf_counter() - start:.1f} s")
    rows = []
    print("| sample | shape | load ms | statistics ms | what |\n|---|---|---|---|---|")
    for sample in samples + synthetic:
        start = time.perf_counter()
        rows.append(
            (sample.name, tissue_statistics(sample.hu, sample.spacing_mm, sample.blood_mask))
        )
        seconds = time.perf_counter() - start
        shape = "x".join(str(n) for n in sample.hu.shape)
        load_ms = "-" if sample.load_seconds is None else f"{sample.load_seconds * 1000:.0f}"
        print(
            f"| {sample.name} | {shape} | {load_ms} | {seconds * 1000:.0f} | {sample.description} |"
        )
    table = stats_table(rows)
    summary = _summary(rows, ["cq500 4.9 mm slabs", "ge", "synth", "real:"])
    blood = [s.blood_median_hu for n, s in rows if n.startswith("ctich") and s.blood_median_hu]
    print("\n" + table + "\n\n" + summary)
    print(f"\nCT-ICH real blood, median of slice medians: {np.median(blood):.0f} HU")
    tiles = representative_tiles(samples) + real_level_tiles(samples) + synthetic_tiles(synthetic)
    if args.sheet:
        contact_sheet(tiles, args.sheet)
        print(f"\ncontact sheet: {args.sheet}")
    if args.docs:
        args.docs.mkdir(parents=True, exist_ok=True)
        contact_sheet(tiles, args.docs / "realism.png", tile_px=320)
        (args.docs / "realism.md").write_text(
            DOC.format(table=table, summary=summary, ctich=f"{np.median(blood):.0f}")
        )
        print(f"\nwrote {args.docs / 'realism.md'} and {args.docs / 'realism.png'}")


DOC = """# How the synthetic studies compare with real head CT

Produced by `.venv/bin/python bench/realism.py --docs docs` (real samples from
`../shared/data/real`, read at run time). Every number below is measured by the same code,
`ich.phantom.realism.tissue_statistics`, on real and synthetic volumes alike.

![contact sheet](realism.png)

The sheet shows every tile at the same physical scale (240 mm across) in the brain window
(level 40, width 80): first the real samples (CQ500 averaged into 5 mm slabs, the GE routine
head, the skull-stripped DeepBleed volume, RSNA and CT-ICH single slices with hemorrhage, and
CQ500 skull-base and vertex slabs), then the synthetic studies, each at its largest bleed
(\"real:\" tiles are real scans with synthetic hemorrhage inserted).

## Medians by group (volumes only)

{summary}

Real blood, from the CT-ICH masks (median of per-slice medians): {ctich} HU.

## Every sample

{table}

Columns: ICV intracranial volume (slices where the skull ring closes); parenchyma, GM and WM
HU (GM/WM from a two-component mixture, shown only when separable: D is Ashman's D); CSF
median HU and fraction of the eroded intracranial volume; bone median of voxels above 300 HU;
noise: per-pixel (3x3) and over about 5 mm windows (the ratio shows noise correlation);
blood: percentiles inside the ground-truth or expert mask. A row with 0 slices is a single
slice whose skull ring does not close (neck level, or a large gap in the bone): it gives blood
statistics only.

## Known differences

- Synthetic grey and white matter are rarely separable in these statistics, like most real
  5 mm slabs; the phantom's cortex is simpler (no real gyral folding pattern).
- The skull base is a smooth floor with simple sinuses, orbits and petrous ridges: its slices
  look schematic next to real ones, and a slab cutting the orbital roofs shows more
  uniform bone than a real scan.
- Blood: IPH is drawn at 52-85 HU, acute EDH/SDH at 50-78, SAH at 42-65 (subacute SDH
  32-45); labelled voxels are at least half blood, so their median sits a little above the
  CT-ICH masks, which include the blurred rim of each bleed.
- Noise texture is Gaussian-filtered white noise, its grain set per reconstruction kernel;
  real noise power spectra are not modelled in detail.
- Mass effect is a smooth push away from the largest bleed with the nearby sulci closed and
  the ventricle on the bleed's side narrowed by a fixed rim; it does not model herniation.
"""


if __name__ == "__main__":
    main()

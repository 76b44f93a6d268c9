"""PNG overlays of a result: the CT in a brain window, reported blood coloured by class, and a
box with class and score around each hemorrhage on each plane, so a reader sees what was found.

Drawn with PIL alone: the gateway renders one per plane after every analysis, so each must
take milliseconds.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ich.schema import ExamResult, Hemorrhage, HemorrhageClass

COLOURS = {
    HemorrhageClass.IPH: (1.0, 0.15, 0.15),
    HemorrhageClass.EDH_SDH: (0.2, 0.9, 0.2),
    HemorrhageClass.SAH: (1.0, 0.85, 0.1),
}
BRAIN_WINDOW = (40.0, 80.0)
_BLEND = 0.55
"""Weight of the class colour over the grey value where there is blood."""
_FONT_PX = 11


def _brain(hu: np.ndarray) -> np.ndarray:
    level, width = BRAIN_WINDOW
    return np.clip((hu.astype(np.float32) - (level - width / 2)) / width, 0.0, 1.0)


def _rgb(colour: tuple[float, float, float]) -> tuple[int, int, int]:
    return tuple(round(255 * v) for v in colour)  # type: ignore[return-value]


def _boxes(
    label_plane: np.ndarray, result: ExamResult, k: int
) -> list[tuple[HemorrhageClass, tuple[int, int, int, int], str]]:
    """(class, (row0, col0, row1, col1) stops exclusive, caption) of each box on plane ``k``:
    the result's detections there if it has any, else each hemorrhage's box cut to the plane."""
    volumes = {h.id: h.volume_ml for h in result.hemorrhages}
    if result.detections:
        return [
            (
                d.hemorrhage_class,
                (d.box_pixels[1], d.box_pixels[0], d.box_pixels[3], d.box_pixels[2]),
                f"{d.hemorrhage_class.value} {d.score:.2f} "
                f"{volumes.get(d.hemorrhage_id, 0.0):.1f} mL",
            )
            for d in result.detections
            if d.index == k
        ]
    boxes = []
    for h in result.hemorrhages:
        box = _plane_box(label_plane, h) if h.bbox_voxels[0] <= k < h.bbox_voxels[3] else None
        if box is not None:
            caption = f"{h.hemorrhage_class.value} {h.score:.2f} {h.volume_ml:.1f} mL"
            boxes.append((h.hemorrhage_class, box, caption))
    return boxes


def overlay_png(hu_plane: np.ndarray, label_plane: np.ndarray, result: ExamResult, k: int) -> bytes:
    """Plane ``k`` (its HU and label on the analysed grid) as PNG bytes: brain window, blood
    tinted by class, a box and caption (class, score, volume) around each finding there."""
    grey = _brain(hu_plane)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for c, colour in COLOURS.items():
        blood = label_plane == c.label
        rgb[blood] = (1 - _BLEND) * rgb[blood] + _BLEND * np.asarray(colour, dtype=np.float32)
    image = Image.fromarray(np.rint(rgb * 255).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=_FONT_PX)
    for c, (r0, c0, r1, c1), caption in _boxes(label_plane, result, k):
        colour = _rgb(COLOURS[c])
        draw.rectangle((c0 - 1, r0 - 1, c1, r1), outline=colour)  # just outside the pixels
        baseline = r0 - 2 if r0 - 2 >= _FONT_PX else r1 + 2 + _FONT_PX  # above, else below
        draw.text((c0, baseline), caption, fill=colour, font=font, anchor="ls")
    header = f"plane {k + 1}/{result.shape[0]}  any ICH {result.any_ich_probability:.2f}"
    draw.text((4, 4), header, fill=(255, 255, 255), font=font)
    out = BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def write_overlays(
    hu: np.ndarray, label: np.ndarray, result: ExamResult, out: Path, all_planes: bool = False
) -> list[Path]:
    """One PNG per plane with a reported hemorrhage (every plane with ``all_planes``)."""
    out.mkdir(parents=True, exist_ok=True)
    planes = (
        range(len(hu))
        if all_planes
        else sorted(
            {k for h in result.hemorrhages for k in range(h.bbox_voxels[0], h.bbox_voxels[3])}
        )
    )
    written = []
    for k in planes:
        path = out / f"plane_{k + 1:03d}.png"
        path.write_bytes(overlay_png(hu[k], label[k], result, k))
        written.append(path)
    return written


def _plane_box(plane_label: np.ndarray, hemorrhage: Hemorrhage) -> tuple[int, int, int, int] | None:
    """The hemorrhage's box on one plane: its voxel box, cut to its class's pixels there."""
    _, r0, c0, _, r1, c1 = hemorrhage.bbox_voxels
    region = plane_label[r0:r1, c0:c1] == hemorrhage.hemorrhage_class.label
    if not region.any():
        return None
    rows, cols = np.nonzero(region)
    return (
        r0 + int(rows.min()),
        c0 + int(cols.min()),
        r0 + int(rows.max()) + 1,
        c0 + int(cols.max()) + 1,
    )

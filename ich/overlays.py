"""PNG overlays of a result: the CT in a brain window, reported blood coloured by class, and a
box with class and score around each hemorrhage on each plane, so a reader sees what was found.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ich.schema import ExamResult, Hemorrhage, HemorrhageClass

COLOURS = {
    HemorrhageClass.IPH: (1.0, 0.15, 0.15),
    HemorrhageClass.EDH_SDH: (0.2, 0.9, 0.2),
    HemorrhageClass.SAH: (1.0, 0.85, 0.1),
}
BRAIN_WINDOW = (40.0, 80.0)


def _brain(hu: np.ndarray) -> np.ndarray:
    level, width = BRAIN_WINDOW
    return np.clip((hu.astype(np.float32) - (level - width / 2)) / width, 0.0, 1.0)


def write_overlays(
    hu: np.ndarray, label: np.ndarray, result: ExamResult, out: Path, all_planes: bool = False
) -> list[Path]:
    """One PNG per plane with a reported hemorrhage (every plane with ``all_planes``)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.patches import Rectangle

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
        grey = _brain(hu[k])
        rgb = np.repeat(grey[..., None], 3, axis=2)
        for c, colour in COLOURS.items():
            blood = label[k] == c.label
            rgb[blood] = 0.45 * rgb[blood] + 0.55 * np.asarray(colour)
        rows, cols = grey.shape
        figure = plt.figure(figsize=(cols / 100, rows / 100), dpi=100)
        axes = figure.add_axes((0, 0, 1, 1))
        axes.imshow(rgb, interpolation="nearest")
        axes.set_axis_off()
        for h in result.hemorrhages:
            if not h.bbox_voxels[0] <= k < h.bbox_voxels[3]:
                continue
            box = _plane_box(label[k], h)
            if box is None:
                continue
            r0, c0, r1, c1 = box
            colour = COLOURS[h.hemorrhage_class]
            axes.add_patch(
                Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False, lw=1.2, ec=colour)
            )
            caption = f"{h.hemorrhage_class.value} {h.score:.2f} {h.volume_ml:.1f} mL"
            axes.text(c0, max(0, r0 - 3), caption, color=colour, fontsize=8, va="bottom")
        axes.text(4, 4, f"plane {k + 1}/{len(hu)}  any ICH {result.any_ich_probability:.2f}",
                  color="white", fontsize=8, va="top")  # fmt: skip
        path = out / f"plane_{k + 1:03d}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
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

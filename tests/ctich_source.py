"""Hand-made data sets in the CT-ICH volumes layout (NIfTI brain-window values, masks and
slices.csv), for the converter's and cross-validation's tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ich.datasets.ctich import HU_PER_VALUE
from ich.nifti import write_volume_nifti

TYPES = ("Intraventricular", "Intraparenchymal", "Subarachnoid", "Epidural", "Subdural")
AFFINE = np.array(
    [[0.0, 0.0, -0.45, 0.0], [0.0, -0.45, 0.0, 0.0], [5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
"""The data set's own geometry: (k, i, j) to LPS with rows running anterior."""


Patient = tuple[np.ndarray, np.ndarray, list[set[str]]]
"""Brain-window values (k, i, j), the blood mask, and the types named on each slice."""


def write_source(root: Path, patients: dict[str, Patient]) -> Path:
    """A CT-ICH-shaped folder: values (k, i, j) and masks written as the data set stores them."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, (values, mask, types) in patients.items():
        (root / name).mkdir()
        write_volume_nifti(root / name / "image.nii.gz", values, AFFINE)
        write_volume_nifti(root / name / "mask.nii.gz", mask.astype(np.uint8), AFFINE)
        for k, present in enumerate(types):
            rows.append({"patient": int(name), "slice_index": k, "SliceNumber": k + 1,
                         **{t: int(t in present) for t in TYPES},
                         "No_Hemorrhage": int(not present), "Fracture_Yes_No": 0,
                         "mask_pixels": int(mask[k].sum())})  # fmt: skip
    with (root / "slices.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def head(slices: int = 6) -> np.ndarray:
    """uint8 brain-window values: air 0, a skull ring at 255, brain 50 HU."""
    yy, xx = np.mgrid[:64, :64]
    radius = np.hypot(yy - 31.5, xx - 31.5)
    plane = np.where(radius < 28, 255, 0)
    plane[radius < 24] = round(70 / HU_PER_VALUE)
    return np.repeat(plane[None].astype(np.uint8), slices, axis=0)


def small_source(root: Path, patients: int = 2) -> Path:
    """Patients 049, 050, ...: every other one (049 first) with a 2-slice epidural bleed of
    85 HU, the rest without blood."""
    values = head()
    bleed = np.zeros(values.shape, dtype=bool)
    bleed[1:3, 20:26, 30:40] = True
    values[bleed] = round(105 / HU_PER_VALUE)
    sick = (values, bleed, [set(), {"Epidural"}, {"Epidural"}, set(), set(), set()])
    well = (head(), np.zeros(values.shape, bool), [set()] * 6)
    return write_source(root, {f"{49 + n:03d}": well if n % 2 else sick for n in range(patients)})

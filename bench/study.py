"""The benchmark study: 32 slices of 512x512 synthetic head CT with a bleed, as DICOM files."""

from __future__ import annotations

from pathlib import Path

from ich.phantom.generate import CaseOptions, synthesize
from ich.phantom.series_writer import encode_series, to_bytes

SLICES = 32


def write_study(folder: Path) -> int:
    """A synthetic 512x512 study with a bleed, cut to its middle 32 slices. Its slices are
    4.5 mm: at 5 mm a whole head takes 28-31 slices."""
    options = CaseOptions(slice_mm=4.5, prevalence=1.0, gantry_tilt_deg=0.0)
    case = next(c for i in range(20) if len((c := synthesize(7, i, options)).hu) >= SLICES)
    datasets = encode_series(case.hu, case.spec, case.study)
    start = max(0, (len(datasets) - SLICES) // 2)
    chosen = datasets[start : start + SLICES]
    for n, ds in enumerate(chosen):
        (folder / f"{n:03d}.dcm").write_bytes(to_bytes(ds))
    return len(chosen)

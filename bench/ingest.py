"""Ingestion speed: header-only triage (what the gateway does) versus a full decode.

Prints medians over repeated runs in one process (the machines are noisy, so compare the ratios
printed here, not numbers from different runs). Uses the real CQ500 thin series (JPEG
Lossless, 238 slices) when ../shared/data/real is present, and a synthetic 512x512 series.

    .venv/bin/python bench/ingest.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian

from ich.dicom import scan, select
from ich.dicom.volume import load_volume
from ich.phantom.generate import CaseOptions, synthesize
from ich.phantom.study import study_files, write_files

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "cq500" / "dicom"


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(label: str, path: Path, repeats: int) -> None:
    selection = select(scan(path))
    grid = selection.chosen.grid
    slices = len(grid.instances)
    headers = median_seconds(lambda: select(scan(path)), repeats)
    full = median_seconds(lambda: load_volume(grid, "", ""), repeats)
    print(f"{label}: {slices} slices, {len(selection.scan.headers)} images read")
    print(
        f"  headers + selection  {headers * 1000:8.1f} ms  {headers / slices * 1000:6.2f} ms/slice"
    )
    print(f"  decode to HU grid    {full * 1000:8.1f} ms  {full / slices * 1000:6.2f} ms/slice")
    print(f"  header-only triage is x{(headers + full) / headers:.1f} faster than a full load")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if REAL.is_dir():
        bench("CQ500 thin series (JPEG Lossless, real)", REAL, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        case = synthesize(0, 0, CaseOptions(slice_mm=5.0, transfer_syntax=ExplicitVRLittleEndian))
        write_files(Path(tmp), study_files(case, distractors=False))
        bench("synthetic 512x512 5 mm series (uncompressed)", Path(tmp), args.repeats)


if __name__ == "__main__":
    main()

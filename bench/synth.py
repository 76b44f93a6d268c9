"""Speed of synthetic study generation (target: a 32-slice 512x512 study in under 2 s).

Prints medians over several cases in one process (the machines are noisy: compare numbers
from the same run). Stages: building the head and its lesions and scanning it (``synthesize``),
then encoding the DICOM files of the analysable series, per transfer syntax; then a whole study
with distractor series, a thin-slice study and a case on a real background when the real
samples are present.

    .venv/bin/python bench/synth.py [--cases 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from pydicom.uid import UID

from ich.phantom.generate import Case, CaseOptions, synthesize
from ich.phantom.real_background import RealBackgrounds
from ich.phantom.scanner import TRANSFER_SYNTAXES
from ich.phantom.series_writer import encode_series, to_bytes
from ich.phantom.study import study_files

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def median(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.0f} ms"


def encode(case: Case, syntax: str) -> int:
    spec = replace(case.spec, transfer_syntax=syntax)
    return sum(len(to_bytes(ds)) for ds in encode_series(case.hu, spec, case.study))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=5)
    args = parser.parse_args()
    options = CaseOptions(slice_mm=5.0, gantry_tilt_deg=0.0, prevalence=1.0)
    runs = [timed(lambda i=i: synthesize(0, i, options)) for i in range(args.cases)]
    cases: list[Case] = [case for _, case in runs]  # type: ignore[misc]
    slices = [case.spec.slices for case in cases]
    print(f"5 mm studies, 512x512, {min(slices)}-{max(slices)} slices, {args.cases} cases")
    print(f"  head, lesions, scan (synthesize)   {median([t for t, _ in runs])}")
    per_32 = [t * 32 / c.spec.slices for (t, _), c in zip(runs, cases, strict=True)]
    print(f"  same, scaled to 32 slices          {median(per_32)}")
    for syntax, _ in TRANSFER_SYNTAXES:
        times = [timed(lambda c=c, s=syntax: encode(c, s))[0] for c in cases[:3]]
        size = encode(cases[0], syntax) / 2**20
        print(f"  + encode {UID(syntax).name[:38]:38s} {median(times)}  {size:5.1f} MiB")
    whole = [timed(lambda c=c: study_files(c, distractors=True))[0] for c in cases[:3]]
    print(f"  + encode with distractor series    {median(whole)}  (explicit VR)")
    thin = timed(lambda: synthesize(0, 99, replace(options, slice_mm=0.625)))
    print(f"thin 0.625 mm study ({thin[1].spec.slices} slices): {thin[0]:.2f} s")  # type: ignore[union-attr]
    if REAL.is_dir():
        backgrounds = RealBackgrounds.shared(REAL)
        load = timed(lambda: backgrounds.backgrounds)[0]
        real = [timed(lambda i=i: backgrounds.synthesize(0, i, options))[0] for i in range(3)]
        print(f"real backgrounds: load and segment once {load:.1f} s, then per case {median(real)}")


if __name__ == "__main__":
    main()

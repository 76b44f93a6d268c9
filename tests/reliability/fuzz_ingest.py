"""Coverage-guided fuzzing (atheris, libFuzzer) of the ingestion code the gateway runs on every
upload: header scan, series selection and pixel decoding, with one file of a valid 8-slice
series replaced by the fuzzer's bytes. Anything but an ``IchError`` (which the gateway maps to a
documented problem) is a crash.

    PYTHONPATH=tests .venv/bin/python tests/reliability/fuzz_ingest.py CORPUS_DIR -max_total_time=60
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["ich"]):
    from ich.dicom import InputLimits, load_volume, scan, select
    from ich.errors import IchError

from reliability_support import tiny_study

FOLDER = Path(tempfile.mkdtemp(prefix="ich-fuzz-"))
FUZZED = FOLDER / "fuzzed.dcm"
PATHS = [FUZZED]
for n, data in enumerate(tiny_study()[1][1:]):
    path = FOLDER / f"valid{n}.dcm"
    path.write_bytes(data)
    PATHS.append(path)
LIMITS = InputLimits(max_files=50, max_total_bytes=64 << 20, max_zip_ratio=200.0)


def one_input(data: bytes) -> None:
    FUZZED.write_bytes(data)
    try:
        chosen = select(scan(PATHS, LIMITS)).chosen
        load_volume(chosen.grid, chosen.series.study_uid, chosen.series.series_uid)
    except IchError:
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()

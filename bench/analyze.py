"""Speed and memory of ``ich analyze`` on a 32-slice 512x512 study, against torchvision's
``maskrcnn_resnet50_fpn`` run slice by slice on the same planes, in the same run.

Targets: median at most 3 s, peak memory at most 2 GB, at least 10x faster than the baseline.
Times are medians over repeats in one process (the machines are noisy: compare ratios from one
run). "warm" is a loaded model analysing a study from its DICOM files (ingestion, model grid,
detector, instances, volumes, result); "cold" adds starting Python, importing torch, loading
and compiling the model, measured with the peak memory in a fresh process. The baseline gets
the brain window as its 3 channels at 512x512 (no resize), with untrained weights (its speed
does not depend on them beyond the number of detections, which its score threshold caps).

    .venv/bin/python bench/analyze.py [--repeats 5] [--baseline-repeats 2] [--model FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from study import write_study

from ich.dicom import load
from ich.model.analyzer import Analyzer
from ich.model.checkpoint import DEFAULT_MODEL

_COLD = """
import json, resource, sys, time
start = time.perf_counter()
from ich.dicom import load
from ich.model.analyzer import Analyzer
from pathlib import Path
analyzer = Analyzer(Path(sys.argv[2]))
result, _ = analyzer(load(Path(sys.argv[1])))
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "any_ich": result.any_ich_probability}))
"""


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-repeats", type=int, default=2)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        slices = write_study(folder)
        print(f"study: {slices} slices, 512x512, 4.5 mm; torch threads {torch.get_num_threads()}")

        cold = json.loads(subprocess.run(
            [sys.executable, "-c", _COLD, str(folder), str(args.model)],
            check=True, capture_output=True, text=True,
        ).stdout)  # fmt: skip
        analyzer = Analyzer(args.model)
        analyzer(load(folder))  # warm-up
        warm, stages = [], {"ingest": [], "analyse": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            volume = load(folder)
            loaded = time.perf_counter()
            analyzer(volume)
            done = time.perf_counter()
            stages["ingest"].append(loaded - start)
            stages["analyse"].append(done - loaded)
            warm.append(done - start)
        ours = median(warm)
        print(f"ich analyze, warm (median of {args.repeats})   {ours:6.2f} s  "
              f"(ingest {median(stages['ingest']):.2f} s, model and results "
              f"{median(stages['analyse']):.2f} s)")  # fmt: skip
        print(f"ich analyze, cold (new process)        {cold['seconds']:6.2f} s")
        print(f"peak memory, cold process              {cold['peak_mb']:6.0f} MB")

        from torchvision.models.detection import maskrcnn_resnet50_fpn

        baseline = maskrcnn_resnet50_fpn(
            weights=None, weights_backbone=None, min_size=512, max_size=512
        ).eval()
        hu = load(folder).hu.astype(np.float32)
        planes = torch.from_numpy(np.clip((hu - 0.0) / 80.0, 0, 1))
        times = []
        with torch.inference_mode():
            for _ in range(args.baseline_repeats):
                start = time.perf_counter()
                for plane in planes:
                    baseline([plane.expand(3, -1, -1)])
                times.append(time.perf_counter() - start)
        theirs = median(times)
        print(f"maskrcnn_resnet50_fpn, slice by slice  {theirs:6.2f} s "
              f"(median of {args.baseline_repeats}, model only)")  # fmt: skip
        print(f"speed-up (baseline model / our whole analysis)  {theirs / ours:5.1f}x")
        print(f"targets: warm <= 3 s: {ours <= 3}; peak <= 2048 MB: {cold['peak_mb'] <= 2048}; "
              f"speed-up >= 10x: {theirs / ours >= 10}")  # fmt: skip


if __name__ == "__main__":
    main()

"""The benchmark study (32 slices of 512x512 synthetic head CT with a bleed, as DICOM files)
and what the serving benchmarks share: the throughput loop, process memory, ratio lines."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ich.phantom.generate import CaseOptions, synthesize
from ich.phantom.series_writer import encode_series, to_bytes

SLICES = 32
Client = TypeVar("Client")


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


def throughput(
    connect: Callable[[], Client],
    analyse: Callable[[Client], object],
    repeats: int,
    concurrency: Iterable[int] = (1, 2, 4),
) -> dict[int, float]:
    """Studies per second with each number of concurrent clients (``connect`` makes one),
    each client analysing ``max(2, repeats // clients)`` studies one after another."""
    rates = {}
    for workers in concurrency:
        clients = [connect() for _ in range(workers)]
        per_client = max(2, repeats // workers)
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda c, n=per_client: [analyse(c) for _ in range(n)], clients))
        rates[workers] = workers * per_client / (time.perf_counter() - start)
        for client in clients:
            getattr(client, "close", lambda: None)()
    return rates


def ratio_line(label: str, ratio: float, target: float) -> str:
    """A ratio with its target, as the benchmarks print them."""
    return f"{label:52s}{ratio:6.2f} (target <= {target:.2f}: {ratio <= target})"

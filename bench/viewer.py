"""How fast the viewer opens a long study in headless Chromium.

A synthetic 512x512 head CT of about 200 thin slices with a bleed is analysed through the
gateway; then, over interleaved repeats, a fresh viewer link is opened and the browser's own
performance marks give the time from navigation to the first plane drawn and to every plane
loaded, with the bytes of the page and of the planes; then the time to encode each plane's
file. Target: the first plane within 1.5 s and at most a fifth of the time all planes take
(the planes load lazily, nearest first).

    .venv/bin/python bench/viewer.py [--repeats 5] [--slices 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ich_client import Client
from study import ratio_line

from api.outputs import plane_bytes
from api.process import start_gateway
from ich.dicom import load
from ich.phantom.generate import CaseOptions, synthesize
from ich.phantom.series_writer import encode_series, to_bytes
from ich.serving.server import TritonServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "viewer"))
from headless_chromium import headless_chromium

TIMINGS = """
const at = (name) => (performance.getEntriesByName(name)[0] || {}).startTime;
const planes = performance.getEntriesByType("resource").filter(e => e.name.includes("/planes/"));
return {
  first: at("ich-first-plane"), all: at("ich-all-planes"),
  page: performance.getEntriesByType("navigation")[0].encodedBodySize,
  planes: planes.reduce((sum, e) => sum + e.encodedBodySize, 0), requests: planes.length,
};
"""


def write_long_study(folder: Path, slices: int) -> int:
    """A 512x512 study with a bleed, cut to ``slices`` thin slices around its middle."""
    options = CaseOptions(slice_mm=0.75, prevalence=1.0, gantry_tilt_deg=0.0)
    case = synthesize(11, 0, options)
    datasets = encode_series(case.hu, case.spec, case.study)
    start = max(0, (len(datasets) - slices) // 2)
    chosen = datasets[start : start + slices]
    for n, ds in enumerate(chosen):
        (folder / f"{n:04d}.dcm").write_bytes(to_bytes(ds))
    return len(chosen)


def encoding(folder: Path) -> tuple[float, float]:
    """What the follow-up spends per plane on the viewer's files (as ``api.outputs`` writes
    them, labels empty), and their size as a share of the raw HU and labels."""
    volume = load(folder)
    empty = np.zeros(volume.shape[1:], np.uint8)
    times, written = [], 0
    for k in range(volume.shape[0]):
        start = time.perf_counter()
        written += len(plane_bytes(volume.hu[k], empty))
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times), written / (3 * volume.hu.size)


def open_once(browser, url: str, planes: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    browser.get(url)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        timings = browser.execute_script(TIMINGS)
        if timings["all"] is not None:
            assert timings["requests"] == planes, timings
            return timings  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise TimeoutError(f"the viewer did not load {planes} planes in 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--slices", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "study"
        folder.mkdir()
        slices = write_long_study(folder, args.slices)
        with TritonServer.on_free_ports(Path(tmp)) as server:
            gateway = start_gateway(Path(tmp) / "data", server.grpc_url, ICH_LOG_LEVEL="WARNING")
            browser = headless_chromium()
            try:
                with Client(gateway.url, api_key=gateway.key, timeout=900) as sdk:
                    start = time.perf_counter()
                    analysis = sdk.analyze(folder).wait(timeout=900, outputs=True)
                    analysed_s = time.perf_counter() - start
                    assert analysis.result is not None
                    planes = analysis.result.shape[0]
                    runs = [
                        open_once(browser, sdk.viewer_link(analysis).url, planes)
                        for _ in range(args.repeats)
                    ]
            finally:
                browser.quit()
                gateway.stop()
        encode_ms, kept = encoding(folder)
    first = statistics.median(r["first"] for r in runs) / 1000
    every = statistics.median(r["all"] for r in runs) / 1000
    print(f"study: {slices} slices of 512x512 -> {planes} planes; analysed with outputs in "
          f"{analysed_s:.1f} s")  # fmt: skip
    print(f"page {runs[0]['page'] / 1e3:.1f} kB; planes {runs[0]['planes'] / 1e6:.1f} MB in "
          f"{runs[0]['requests']} requests")  # fmt: skip
    print(f"writing the viewer's planes: {encode_ms:.1f} ms a plane (median), {kept:.2f} of "
          "their raw size")  # fmt: skip
    print(f"median of {args.repeats}: first plane drawn {first:.2f} s, all planes {every:.2f} s")
    print(ratio_line("first plane / all planes", first / every, 0.2))
    print(f"first plane {'within' if first <= 1.5 else 'OVER'} the 1.5 s target")


if __name__ == "__main__":
    main()

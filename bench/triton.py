"""``ich analyze`` in-process against the same study through Triton (gRPC), in one run.

The 32-slice 512x512 benchmark study; medians over repeats of a warm analysis from DICOM
files to result (in-process: ingestion + model + results; served: the client sending the
files and receiving result and label volume). Then throughput (studies/s) with 1, 2 and 4
concurrent clients, the compute time of each step per study (Triton's own statistics: what
capacity planning divides into an hour) and the peak resident memory of the server and its
python stubs. Target: Triton / in-process latency at most 1.15.

    .venv/bin/python bench/triton.py [--repeats 5] [--repository model_repository]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import tritonclient.grpc as grpcclient
from study import ratio_line, throughput, write_study

from api.process import status_mb
from ich.dicom import load
from ich.model.analyzer import Analyzer
from ich.serving.client import PIPELINE, PipelineClient, study_files
from ich.serving.server import REPOSITORY, TritonServer, free_port

STEPS = ("ich_preprocess", "ich_detector", "ich_postprocess")


def compute_ns(url: str) -> dict[str, int]:
    """Nanoseconds each step has spent computing (input, inference, output) since the server
    started, from Triton's statistics extension."""
    client = grpcclient.InferenceServerClient(url)
    try:
        stats = client.get_inference_statistics(as_json=True)["model_stats"]
    finally:
        client.close()
    parts = ("compute_input", "compute_infer", "compute_output")
    return {
        s["name"]: sum(int(s["inference_stats"][p].get("ns", 0)) for p in parts)
        for s in stats
        if s["name"] in STEPS
    }


def peak_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak resident set) of ``pid`` and each of its children, in MB."""
    peaks = {}
    # Stubs are started from the server's loader threads: read every thread's children.
    tasks = Path(f"/proc/{pid}/task").glob("*/children")
    children = [c for task in tasks for c in task.read_text().split()]
    for p in [pid, *map(int, children)]:
        name = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
        label = "tritonserver" if p == pid else _stub_name(name)
        peaks[f"{label} ({p})"] = status_mb(p, "VmHWM")
    return peaks


def _stub_name(cmdline: list[bytes]) -> str:
    """The model instance a python stub serves (its command line names its shared memory)."""
    text = b" ".join(cmdline).decode(errors="replace")
    for model in ("ich_preprocess", "ich_detector", "ich_postprocess"):
        if model in text:
            return f"stub {model}"
    return "stub"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--repository", type=Path, default=REPOSITORY)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        slices = write_study(folder)
        analyzer = Analyzer()
        analyzer(load(folder))
        local = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            analyzer(load(folder))
            local.append(time.perf_counter() - start)
        del analyzer
        server = TritonServer(args.repository, free_port(), free_port(), free_port())
        with server:
            files = study_files(folder)
            client = PipelineClient(server.grpc_url)
            client.analyze(files)
            before = compute_ns(server.grpc_url)
            served = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                client.analyze(files)
                served.append(time.perf_counter() - start)
            client.close()
            after = compute_ns(server.grpc_url)
            steps = {name: (after[name] - before[name]) / args.repeats / 1e9 for name in STEPS}
            rates = throughput(
                lambda: PipelineClient(server.grpc_url), lambda c: c.analyze(files), args.repeats
            )
            assert server.process is not None
            memory = peak_mb(server.process.pid)
    ours, theirs = statistics.median(local), statistics.median(served)
    print(f"study: {slices} slices, 512x512 ({sum(map(len, files)) / 2**20:.0f} MB of DICOM)")
    print(f"in-process ich analyze, warm (median of {args.repeats})  {ours:6.2f} s")
    print(f"through Triton, gRPC, warm (median of {args.repeats})   {theirs:6.2f} s")
    print(ratio_line("ratio Triton / in-process", theirs / ours, 1.15))
    for name, seconds in steps.items():
        print(f"compute per study in {PIPELINE}: {name:16s} {seconds:6.2f} s")
    for workers, rate in rates.items():
        print(f"throughput, {workers} concurrent client(s)           {rate:6.2f} studies/s")
    for name, mb in memory.items():
        print(f"peak memory {name:40s} {mb:7.0f} MB")
    print(f"peak memory, server and stubs together       {sum(memory.values()):7.0f} MB")


if __name__ == "__main__":
    main()

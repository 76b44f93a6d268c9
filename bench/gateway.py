"""End to end through the REST gateway against the same study sent straight to Triton.

The 32-slice 512x512 benchmark study. Latency: medians over interleaved repeats of a
synchronous ``POST /v1/analyses`` (multipart upload, spooling, header-only selection, Triton,
storing the result), of the SDK's ``Client.analyze`` on the study's folder (files streamed
from disk) and of the same files sent to Triton with the gRPC client. Between
repeats the gateway's follow-up work (DICOM SEG, SR, overlays) is let finish, and its time is
reported. Then throughput (studies/s; each client waits for its study's follow-up before
sending the next) with 1, 2 and 4 concurrent REST clients, and the gateway process's memory
after start and at its peak. Targets: REST / direct Triton latency at most 1.10; SDK / REST at
most 1.05.

    .venv/bin/python bench/gateway.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from ich_client import Client
from study import ratio_line, throughput, write_study

from api.process import start_gateway, status_mb
from ich.serving.client import PipelineClient, study_files
from ich.serving.server import REPOSITORY, TritonServer, free_port


def submit(parts: list, client: httpx.Client) -> tuple[float, str]:
    start = time.perf_counter()
    answer = client.post("/v1/analyses", files=parts)
    elapsed = time.perf_counter() - start
    if answer.status_code != 200:
        raise RuntimeError(f"gateway answered {answer.status_code}: {answer.text[:300]}")
    return elapsed, answer.json()["id"]


def follow_up_s(client: httpx.Client, analysis_id: str) -> float:
    """Seconds until the DICOM objects of a done analysis are ready."""
    start = time.perf_counter()
    while client.get(f"/v1/analyses/{analysis_id}").json()["outputs"] == "pending":
        time.sleep(0.05)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--repository", type=Path, default=REPOSITORY)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "study"
        folder.mkdir()
        slices = write_study(folder)
        files = study_files(folder)
        paths = sorted(folder.glob("*.dcm"))
        parts = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in paths]
        server = TritonServer(args.repository, free_port(), free_port(), free_port())
        with server:
            gateway = start_gateway(
                Path(tmp) / "data",
                server.grpc_url,
                ICH_WORKERS="4",
                ICH_LOG_LEVEL="WARNING",
                ICH_RATE_LIMIT_PER_MINUTE="1000000",  # the polling clients share one key
            )
            try:
                at_start = status_mb(gateway.process.pid, "VmRSS")
                direct = PipelineClient(server.grpc_url)
                rest = gateway.client(timeout=600)
                direct.analyze(files)
                follow_up_s(rest, submit(parts, rest)[1])
                sdk = Client(gateway.url, api_key=gateway.key, timeout=600)
                served, straight, follow, through_sdk = [], [], [], []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    direct.analyze(files)
                    straight.append(time.perf_counter() - start)
                    elapsed, analysis_id = submit(parts, rest)
                    served.append(elapsed)
                    follow.append(follow_up_s(rest, analysis_id))
                    start = time.perf_counter()
                    analysis = sdk.analyze(folder)
                    through_sdk.append(time.perf_counter() - start)
                    follow_up_s(rest, analysis.id)
                rates = throughput(
                    lambda: gateway.client(timeout=600),
                    lambda c: follow_up_s(c, submit(parts, c)[1]),
                    args.repeats,
                )
                peak = status_mb(gateway.process.pid, "VmHWM")
            finally:
                gateway.stop()
    ours, theirs = statistics.median(served), statistics.median(straight)
    print(f"study: {slices} slices, 512x512 ({sum(map(len, files)) / 2**20:.0f} MB of DICOM)")
    print(f"direct to Triton, gRPC, warm (median of {args.repeats})      {theirs:6.2f} s")
    print(f"REST gateway, synchronous POST (median of {args.repeats})    {ours:6.2f} s")
    print(ratio_line("ratio REST / direct Triton", ours / theirs, 1.10))
    sdk_s = statistics.median(through_sdk)
    print(f"SDK Client.analyze, streamed (median of {args.repeats})      {sdk_s:6.2f} s")
    print(ratio_line("ratio SDK / REST", sdk_s / ours, 1.05))
    print(f"follow-up after the result (SEG, SR, overlays)      {statistics.median(follow):6.2f} s")
    for workers, rate in rates.items():
        print(f"throughput, {workers} concurrent REST client(s)            {rate:6.2f} studies/s")
    print(f"gateway memory: {at_start:.0f} MB resident after start, {peak:.0f} MB peak")


if __name__ == "__main__":
    main()

"""The exported detector on an NVIDIA GPU: parity with PyTorch on the CPU and latency.

On the benchmark study (32 slices, 512x512: two blocks of 16 model planes) it checks the
TorchScript file as ``pytorch_libtorch`` would load it (``torch.jit.load`` onto the GPU) and
the ONNX file with onnxruntime against the eager PyTorch detector on the CPU, and TensorRT
FP32/FP16 engines, where the ``tensorrt`` package is installed, against it on the GPU; each
with the largest differences.
Latency is the median over repeats of one forward pass on both blocks, synchronised.

    python bench/gpu_export.py [--repeats 20] [--out DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from study import write_study

from export.errors import ExportError
from export.onnx import check_onnx, export_onnx
from export.parity import compare
from export.torchscript import export_torchscript
from ich.dicom import load
from ich.model.analyzer import torch_forward
from ich.model.checkpoint import DEFAULT_MODEL, load_model
from ich.model.detector import Detector
from ich.pipeline import prepare
from ich.preprocess import blocks


def timed(run: Callable[[], object], repeats: int) -> float:
    run()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU visible: this benchmark runs on a GPU machine")
    report: dict[str, object] = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    network, config, _, _ = load_model(DEFAULT_MODEL)
    detector = Detector.for_config(network, config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "study"
        folder.mkdir()
        write_study(folder)
        cut = blocks(prepare(load(folder), config.input).series, config.input.context)
        reference = torch_forward(detector)(cut)
        report["blocks"] = list(cut.shape)
        ts_path = Path(tmp) / "model.pt"
        export_torchscript(detector, ts_path)
        scripted = torch.jit.load(str(ts_path), map_location="cuda").eval()
        on_gpu = torch_forward(scripted, "cuda")
        report["torchscript_cuda"] = compare(
            "torchscript-cuda", reference, on_gpu(cut)
        ).model_dump()
        gpu_blocks = torch.from_numpy(cut).cuda()
        eager = copy.deepcopy(detector).cuda()
        with torch.inference_mode():
            report["latency_s"] = {
                "torchscript_fp32": timed(lambda: scripted(gpu_blocks), args.repeats),
                "eager_fp32": timed(lambda: eager(gpu_blocks), args.repeats),
            }
            with torch.autocast("cuda", dtype=torch.bfloat16):
                report["latency_s"]["eager_bf16_autocast"] = timed(
                    lambda: eager(gpu_blocks), args.repeats
                )
        onnx_path = Path(tmp) / "model.onnx"
        report["onnx_opset"] = export_onnx(detector, onnx_path, cut[:1])
        report["onnxruntime_cpu"] = check_onnx(onnx_path, detector, cut).model_dump()
        try:
            from export.tensorrt import build_engine, check_engine

            for fp16 in (False, True):
                plan = Path(tmp) / f"model-{'fp16' if fp16 else 'fp32'}.plan"
                build_engine(onnx_path, plan, cut.shape[1:], 32, fp16)
                parity = check_engine(plan, detector.cpu(), cut, fp16)
                report[parity.runtime] = parity.model_dump()
        except ExportError as error:
            report["tensorrt"] = f"unverified: {error.message}"
        except Exception as error:  # keep the rest of the report
            report["tensorrt"] = f"failed: {type(error).__name__}: {error}"
    print(json.dumps(report, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_export.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

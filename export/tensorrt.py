"""TensorRT engines (FP32 or FP16) built from the ONNX file, and their parity with PyTorch.

Needs the ``tensorrt`` package and an NVIDIA GPU; elsewhere every entry point raises an
:class:`ExportError` that says so. The engine takes the same ``blocks`` input, with a batch
profile from 1 to ``max_batch`` blocks, and gives the same five outputs.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np

from export.errors import ExportError
from export.parity import Parity, compare
from ich.model.detector import Detector
from ich.model.runtime import torch_forward

WORKSPACE_BYTES = 4 << 30


def _tensorrt() -> ModuleType:
    try:
        import tensorrt
    except ImportError as error:
        raise ExportError(
            "TensorRT is not installed here: it needs an NVIDIA GPU machine with "
            "`pip install tensorrt` (or the NGC Triton image); export ONNX on this one"
        ) from error
    import torch

    if not torch.cuda.is_available():
        raise ExportError("TensorRT engines are built on the GPU they run on: no GPU is visible")
    return tensorrt


def build_engine(
    onnx_path: Path, plan_path: Path, block_shape: tuple[int, ...], max_batch: int, fp16: bool
) -> None:
    """Parse ``onnx_path`` and write a serialized engine to ``plan_path``.

    ``block_shape`` is one block, (windows, planes, size, size); batches of 1 to
    ``max_batch`` blocks are allowed, optimised for 2 (one 32-plane study).
    """
    trt = _tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape(
        "blocks", (1, *block_shape), (min(2, max_batch), *block_shape), (max_batch, *block_shape)
    )
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ExportError("TensorRT could not build an engine (see its log above)")
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_bytes(bytes(engine))


def run_engine(plan_path: Path, blocks: np.ndarray) -> list[np.ndarray]:
    """The engine's five outputs for ``blocks``, in the order of the ONNX outputs."""
    trt = _tensorrt()
    import torch

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(plan_path.read_bytes())
    context = engine.create_execution_context()
    inputs = torch.from_numpy(np.ascontiguousarray(blocks)).cuda()
    context.set_input_shape("blocks", tuple(inputs.shape))
    context.set_tensor_address("blocks", inputs.data_ptr())
    outputs = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        if engine.get_tensor_mode(name) != trt.TensorIOMode.OUTPUT:
            continue
        dtype = torch.from_numpy(np.empty(0, trt.nptype(engine.get_tensor_dtype(name)))).dtype
        out = torch.empty(tuple(context.get_tensor_shape(name)), dtype=dtype, device="cuda")
        context.set_tensor_address(name, out.data_ptr())
        outputs.append(out)
    stream = torch.cuda.current_stream()
    if not context.execute_async_v3(stream.cuda_stream):
        raise ExportError("TensorRT inference failed")
    stream.synchronize()
    return [o.cpu().numpy() for o in outputs]


def check_engine(plan_path: Path, detector: Detector, blocks: np.ndarray, fp16: bool) -> Parity:
    """The engine against PyTorch (FP32, on the GPU) on the same blocks."""
    _tensorrt()
    reference = torch_forward(detector.cuda())(blocks)
    runtime = "tensorrt-fp16" if fp16 else "tensorrt-fp32"
    return compare(runtime, reference, run_engine(plan_path, blocks), 2e-2 if fp16 else 1e-3)

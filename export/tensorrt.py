"""TensorRT engines (FP32 or FP16) built from the ONNX file, and their parity with PyTorch.

Needs the ``tensorrt`` package and an NVIDIA GPU; elsewhere every entry point raises an
:class:`ExportError` that says so. The engine takes the same ``blocks`` input, with a batch
profile from 1 to ``max_batch`` blocks, and gives the same five outputs.
"""

from __future__ import annotations

import copy
from pathlib import Path
from types import ModuleType

import numpy as np

from export.errors import ExportError
from export.parity import FP16, FP32, Parity, compare
from ich.model.analyzer import torch_forward
from ich.model.contract import DETECTOR_OUTPUTS
from ich.model.detector import Detector

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
        _fp16_for_heavy_layers(trt, network, config)
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


def _fp16_for_heavy_layers(trt: ModuleType, network: object, config: object) -> None:
    """FP16 where the arithmetic is (convolutions, matrix products), FP32 elsewhere: box
    decoding and the NMS group shifts (coordinates up to ~16k) would lose whole pixels in
    FP16."""
    config.set_flag(trt.BuilderFlag.FP16)
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    heavy = {trt.LayerType.CONVOLUTION, trt.LayerType.MATRIX_MULTIPLY}
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.type in heavy:
            continue
        for output in range(layer.num_outputs):
            if layer.get_output(output).dtype == trt.float32:
                layer.precision = trt.float32
                layer.set_output_type(output, trt.float32)


def run_engine(plan_path: Path, blocks: np.ndarray) -> list[np.ndarray]:
    """The engine's five outputs for ``blocks``, in :data:`DETECTOR_OUTPUTS` order."""
    trt = _tensorrt()
    import torch

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(plan_path.read_bytes())
    if engine is None:
        raise ExportError(f"{plan_path.name} is not an engine for this GPU and TensorRT version")
    context = engine.create_execution_context()
    inputs = torch.from_numpy(np.ascontiguousarray(blocks)).cuda()
    if not context.set_input_shape("blocks", tuple(inputs.shape)):
        raise ExportError(f"the engine does not take blocks of shape {tuple(inputs.shape)}")
    context.set_tensor_address("blocks", inputs.data_ptr())
    outputs = {}
    for name in DETECTOR_OUTPUTS:
        dtype = torch.from_numpy(np.empty(0, trt.nptype(engine.get_tensor_dtype(name)))).dtype
        outputs[name] = torch.empty(
            tuple(context.get_tensor_shape(name)), dtype=dtype, device="cuda"
        )
        context.set_tensor_address(name, outputs[name].data_ptr())
    stream = torch.cuda.Stream()  # TensorRT syncs extra on the legacy default stream
    if not context.execute_async_v3(stream.cuda_stream):
        raise ExportError("TensorRT inference failed")
    stream.synchronize()
    return [outputs[name].cpu().numpy() for name in DETECTOR_OUTPUTS]


def check_engine(plan_path: Path, detector: Detector, blocks: np.ndarray, fp16: bool) -> Parity:
    """The engine against PyTorch (FP32, on the GPU; ``detector`` itself stays where it is)
    on the same blocks."""
    _tensorrt()
    reference = torch_forward(copy.deepcopy(detector).cuda())(blocks)
    runtime = "tensorrt-fp16" if fp16 else "tensorrt-fp32"
    return compare(runtime, reference, run_engine(plan_path, blocks), FP16 if fp16 else FP32)

"""The Triton model repository: the ensemble, its three steps and the exported detector.

Everything in it is written here from one model file, so the preprocess grid, the detector's
tensor shapes and the postprocess operating point cannot drift apart. The python steps'
``model.py`` files only name classes of :mod:`ich.serving.backend`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from export.errors import ExportError
from export.formats import PLATFORMS, WEIGHTS, Format, Target
from export.parity import Parity
from export.sample import sample_blocks
from ich.model.checkpoint import load_model
from ich.model.contract import DETECTOR_OUTPUTS
from ich.model.detector import Detector
from ich.preprocess import BLOCK_PLANES, BLOCKS_PER_CALL, InputSpec

MAX_BLOCKS = 32
"""Blocks one request may carry (512 model planes): the detector's max_batch_size."""
QUEUE_DELAY_US = 2000
"""How long the detector waits to batch blocks of concurrent studies."""


@dataclass(frozen=True)
class Exported:
    repository: Path
    weights: Path
    parity: list[Parity]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_repository(
    model: Path,
    repository: Path,
    fmt: Format,
    target: Target,
    check: bool = True,
    fp16: bool = False,
) -> Exported:
    """Export ``model`` as ``fmt`` for ``target`` and (re)write ``repository``'s four models.

    On CPU the bundled Triton has the python backend only, so the detector is a python step
    running the TorchScript (torch) or ONNX (onnxruntime) file; on GPU images it is the
    native ``pytorch_libtorch``, ``onnxruntime`` or ``tensorrt_plan`` model.

    Raises:
        ExportError: TensorRT on a CPU target or without TensorRT, or a failed export.
    """
    if fmt is Format.tensorrt and target is Target.cpu:
        raise ExportError("TensorRT engines run on NVIDIA GPUs: use --target gpu")
    network, config, operating_point, _ = load_model(model)
    detector = Detector.for_config(network, config)
    spec = config.input
    block = _block_shape(spec)
    with tempfile.TemporaryDirectory() as staging:
        staged, parity = _export_weights(detector, spec, fmt, Path(staging), check, fp16)
        failed = [p for p in parity if not p.detections_agree or p.detections == 0]
        if failed:
            raise ExportError(
                f"the exported detector does not answer like PyTorch on a sample study "
                f"(the repository is left as it was): {failed}"
            )
        # Only now the old weights go: a failed export leaves a working repository.
        version = repository / "ich_detector" / "1"
        version.mkdir(parents=True, exist_ok=True)
        for stale in WEIGHTS.values():
            (version / stale).unlink(missing_ok=True)
        weights = Path(shutil.move(staged, version / staged.name))
    k, side = detector.max_detections, detector.mask_size
    per_plane = [("TYPE_FP32", [k, 4]), ("TYPE_INT64", [k]), ("TYPE_FP32", [k]),
                 ("TYPE_FP32", [k, side, side]), ("TYPE_INT64", [])]  # fmt: skip
    shapes = {
        name: (dtype, [BLOCK_PLANES, *dims])
        for name, (dtype, dims) in zip(DETECTOR_OUTPUTS, per_plane, strict=True)
    }
    provenance = {"source_model": model.name, "source_sha256": sha256(model)}
    write = _Writer(repository)
    write.config("ich_preprocess", _preprocess(spec.model_dump_json(), block))
    write.step("ich_preprocess", "PreprocessStep")
    write.config("ich_detector", _detector(fmt, target, block, shapes, provenance))
    if target is Target.cpu:
        write.step("ich_detector", "DetectorStep")
    else:
        (version / "model.py").unlink(missing_ok=True)
    write.config("ich_postprocess", _postprocess(operating_point.model_dump_json(), shapes))
    write.step("ich_postprocess", "PostprocessStep")
    write.config("ich_pipeline", _ensemble())
    (repository / "ich_pipeline" / "1").mkdir(parents=True, exist_ok=True)
    (repository / "ich_pipeline" / "1" / ".keep").write_text("")
    return Exported(repository, weights, parity)


def _block_shape(spec: InputSpec) -> tuple[int, int, int, int]:
    """One block of detector input: (windows, planes with context, size, size)."""
    return (len(spec.windows), BLOCK_PLANES + spec.context - 1, spec.size, spec.size)


def _export_weights(
    detector: Detector, spec: InputSpec, fmt: Format, folder: Path, check: bool, fp16: bool
) -> tuple[Path, list[Parity]]:
    """The detector file for ``fmt`` in ``folder``, and its parity checks (ONNX, TensorRT)."""
    if fmt is Format.torchscript:
        from export.torchscript import export_torchscript

        export_torchscript(detector, folder / WEIGHTS[fmt])
        return folder / WEIGHTS[fmt], []
    from export.onnx import check_onnx, export_onnx

    example = sample_blocks(spec)
    onnx_path = folder / WEIGHTS[Format.onnx]
    export_onnx(detector, onnx_path, example[:1])
    parity = [check_onnx(onnx_path, detector, example)] if check else []
    if fmt is Format.onnx:
        return onnx_path, parity
    from export.tensorrt import build_engine, check_engine

    plan = folder / WEIGHTS[fmt]
    build_engine(onnx_path, plan, _block_shape(spec), MAX_BLOCKS, fp16)
    if check:
        parity.append(check_engine(plan, detector, example, fp16))
    return plan, parity


class _Writer:
    def __init__(self, root: Path) -> None:
        self.root = root

    def config(self, name: str, body: str) -> None:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        header = f'# Written by `ich export`; edit there, not here.\nname: "{name}"\n'
        (folder / "config.pbtxt").write_text(header + body)

    def step(self, name: str, step: str) -> None:
        version = self.root / name / "1"
        version.mkdir(parents=True, exist_ok=True)
        (version / "model.py").write_text(
            f'"""Triton python model `{name}`: see ich.serving.backend.{step}."""\n\n'
            f"from ich.serving.backend import {step} as TritonPythonModel\n\n"
            '__all__ = ["TritonPythonModel"]\n'
        )


def _tensor(name: str, dtype: str, dims: Sequence[int]) -> str:
    return f'  {{ name: "{name}" data_type: {dtype} dims: [ {", ".join(map(str, dims))} ] }}'


def _tensors(kind: str, tensors: Sequence[str]) -> str:
    return f"{kind} [\n" + ",\n".join(tensors) + "\n]\n"


def _parameters(values: Mapping[str, object]) -> str:
    return "".join(
        f"parameters {{ key: {json.dumps(k)} value {{ string_value: {json.dumps(str(v))} }} }}\n"
        for k, v in values.items()
    )


def _results() -> list[str]:
    """What the postprocess and so the ensemble return."""
    return [
        _tensor("result", "TYPE_STRING", [1]),
        _tensor("label_volume", "TYPE_UINT8", [-1, -1, -1]),
    ]


def _instances(count: int, kind: str) -> str:
    return f"instance_group [ {{ count: {count} kind: {kind} }} ]\n"


def _preprocess(spec_json: str, block: tuple[int, ...]) -> str:
    return (
        'backend: "python"\nmax_batch_size: 0\n'
        + _tensors("input", [_tensor("dicom", "TYPE_STRING", [-1])])
        + _tensors(
            "output",
            [_tensor("blocks", "TYPE_FP32", [-1, *block]), _tensor("context", "TYPE_STRING", [1])],
        )
        + _instances(2, "KIND_CPU")
        + _parameters(
            {"input_spec": spec_json, "block_planes": BLOCK_PLANES, "max_blocks": MAX_BLOCKS}
        )
    )


def _detector(
    fmt: Format,
    target: Target,
    block: tuple[int, ...],
    shapes: Mapping[str, tuple[str, list[int]]],
    provenance: Mapping[str, str],
) -> str:
    if target is Target.cpu:
        runtime = "torchscript" if fmt is Format.torchscript else "onnx"
        head = 'backend: "python"\n'
        kind = "KIND_CPU"
        parameters: dict[str, object] = {
            "runtime": runtime,
            "file": WEIGHTS[fmt],
            "per_call": BLOCKS_PER_CALL,
            "threads": 0,
        }
    else:
        head = f'platform: "{PLATFORMS[fmt]}"\ndefault_model_filename: "{WEIGHTS[fmt]}"\n'
        kind = "KIND_GPU"
        parameters = {"INFERENCE_MODE": "true"} if fmt is Format.torchscript else {}
    return (
        head
        + f"max_batch_size: {MAX_BLOCKS}\n"
        + _tensors("input", [_tensor("blocks", "TYPE_FP32", block)])
        + _tensors("output", [_tensor(n, t, d) for n, (t, d) in shapes.items()])
        + f"dynamic_batching {{ max_queue_delay_microseconds: {QUEUE_DELAY_US} }}\n"
        + _instances(1, kind)
        + _parameters({**parameters, **provenance})
    )


def _postprocess(operating_point_json: str, shapes: Mapping[str, tuple[str, list[int]]]) -> str:
    inputs = [_tensor("context", "TYPE_STRING", [1])]
    inputs += [_tensor(n, t, [-1, *d]) for n, (t, d) in shapes.items()]
    return (
        'backend: "python"\nmax_batch_size: 0\n'
        + _tensors("input", inputs)
        + _tensors("output", _results())
        + _instances(2, "KIND_CPU")
        + _parameters({"operating_point": operating_point_json})
    )


def _ensemble() -> str:
    def step(model: str, inputs: Mapping[str, str], outputs: Mapping[str, str]) -> str:
        maps = [f'      input_map {{ key: "{k}" value: "{v}" }}' for k, v in inputs.items()]
        maps += [f'      output_map {{ key: "{k}" value: "{v}" }}' for k, v in outputs.items()]
        return (
            f'    {{\n      model_name: "{model}"\n      model_version: -1\n'
            + "\n".join(maps)
            + "\n    }"
        )

    detected = {name: name.split("__")[0] for name in DETECTOR_OUTPUTS}
    steps = [
        step("ich_preprocess", {"dicom": "dicom"}, {"blocks": "blocks", "context": "context"}),
        step("ich_detector", {"blocks": "blocks"}, detected),
        step(
            "ich_postprocess",
            {"context": "context", **detected},
            {"result": "result", "label_volume": "label_volume"},
        ),
    ]
    return (
        'platform: "ensemble"\nmax_batch_size: 0\n'
        + _tensors("input", [_tensor("dicom", "TYPE_STRING", [-1])])
        + _tensors("output", _results())
        + "ensemble_scheduling {\n  step [\n"
        + ",\n".join(steps)
        + "\n  ]\n}\n"
    )

"""Model files: weights with the configuration and operating point they need.

A model file is a plain ``torch.save`` dict (no pickled classes): ``config`` and
``operating_point`` as JSON-ready dicts, ``state_dict`` tensors, and ``provenance`` saying how
it was made, so a model can be rebuilt and audited without this code's class layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torchvision.models.detection import MaskRCNN

from ich.errors import IchError
from ich.model.config import ModelConfig
from ich.model.mask_rcnn import build_mask_rcnn
from ich.schema import HemorrhageClass, OperatingPoint

DEFAULT_MODEL = Path(__file__).parent / "weights" / "ich-cpu-default.pt"
FORMAT = "ich-model/1"


class ModelFileError(IchError):
    code = "model_file_unusable"
    title = "Model file unusable"


def untuned_operating_point() -> OperatingPoint:
    """0.5 for every class: for models whose thresholds were not yet chosen on validation."""
    return OperatingPoint(
        thresholds={c: 0.5 for c in HemorrhageClass},
        any_ich=0.5,
        source="untuned: 0.5 everywhere",
    )


def save_model(
    path: Path,
    network: MaskRCNN,
    config: ModelConfig,
    operating_point: OperatingPoint | None = None,
    provenance: dict[str, Any] | None = None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "config": config.model_dump(mode="json"),
        "operating_point": None
        if operating_point is None
        else operating_point.model_dump(mode="json"),
        "provenance": provenance or {},
        "state_dict": {k: v.detach().cpu() for k, v in network.state_dict().items()},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_model(path: Path) -> tuple[MaskRCNN, ModelConfig, OperatingPoint, dict[str, Any]]:
    """(network in eval mode, config, operating point, provenance) of a model file.

    Raises:
        ModelFileError: missing, not a model file, or weights that do not fit the config.
    """
    if not path.is_file():
        hint = (
            "the shipped model is missing from this checkout: reinstall, or rebuild it with "
            "`make train ship-model`"
            if path == DEFAULT_MODEL
            else "pass --model with a file written by `ich train` (its out/model.pt)"
        )
        raise ModelFileError(f"model file {path} not found: {hint}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ModelFileError(f"{path} is not a readable model file: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not an {FORMAT} file (written by `ich train`)")
    config = ModelConfig.model_validate(payload["config"])
    network = build_mask_rcnn(config)
    try:
        network.load_state_dict(payload["state_dict"])
    except RuntimeError as error:
        raise ModelFileError(f"{path}: weights do not fit its configuration: {error}") from error
    op = payload.get("operating_point")
    operating_point = untuned_operating_point() if op is None else OperatingPoint.model_validate(op)
    return network.eval(), config, operating_point, dict(payload.get("provenance") or {})

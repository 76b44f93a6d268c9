"""Training configuration files (YAML): the model to build and how to train it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ich.errors import IchError
from ich.model.config import ModelConfig


class TrainConfigError(IchError):
    code = "train_config_invalid"
    title = "Training configuration invalid"


class TrainConfig(BaseModel):
    """One training run. Paths are relative to the folder ``ich train`` runs in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    model: ModelConfig = ModelConfig()
    data: tuple[Path, ...] = Field(min_length=1, description="Folders written by `ich synth`.")
    validation: Path | None = Field(None, description="Held-apart `ich synth` folder.")
    cache: Path = Field(Path(".cache/ich-train"), description="Preprocessed planes live here.")
    steps: int = Field(ge=1)
    batch: int = Field(8, ge=1, description="Planes per step and process.")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup: int = Field(200, ge=0, description="Steps of linear learning-rate warm-up.")
    negative_fraction: float = Field(0.4, ge=0, lt=1, description="Planes drawn without blood.")
    real_fraction: float = Field(
        0.0, ge=0, le=1, description="Planes drawn from real scans (CT-ICH), if any are given."
    )
    hard_fraction: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Blood-free draws taken from the hardest quarter of blood-free planes "
        "(see hard_negatives), where false positives gather.",
    )
    hard_negatives: Literal["bone", "mined"] = Field(
        "bone",
        description="Which planes are hard: those with the most bone (skull base, vertex), or "
        "those the init model scores highest (mined once before training; needs init).",
    )
    window_fraction: float = Field(
        0.0, ge=0, le=1, description="Full-range planes shown as if stored in a brain window."
    )
    init: Path | None = Field(
        None, description="Model file whose weights training starts from (fine-tuning)."
    )
    fold_init: Path | None = Field(
        None,
        description="Cross-validation: fold K starts from FOLD_INIT/fold_K/model.pt, the same "
        "fold of an earlier cross-validation on the same folds, instead of `init` (which saw "
        "every patient). A longer schedule thus continues each fold without leaking.",
    )
    operating_point: Path | None = Field(
        None,
        description="JSON operating point to store in the model (cross-validation writes one); "
        "it replaces the one chosen on validation.",
    )
    augment: bool = True
    validate_every: int = Field(500, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    log_every: int = Field(20, ge=1)
    min_specificity: float = Field(
        0.975, gt=0, le=1, description="Operating point: most sensitive threshold keeping this."
    )
    workers: int = Field(1, ge=0, description="Data-loading processes per training process.")
    cache_workers: int = Field(2, ge=1)
    amp: bool = Field(True, description="bfloat16 autocast on CUDA (ignored on CPU).")
    seed: int = 0

    @model_validator(mode="after")
    def _mined_from_a_model(self) -> TrainConfig:
        if self.hard_negatives == "mined" and self.init is None and self.fold_init is None:
            raise ValueError("hard_negatives: mined needs a model to mine with: set init")
        return self


def load_config(path: Path) -> TrainConfig:
    """Parse and check a YAML training config.

    Raises:
        TrainConfigError: unreadable file, bad YAML, or values out of range.
    """
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise TrainConfigError(f"cannot read {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise TrainConfigError(f"{path} is not valid YAML: {error}") from error
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise TrainConfigError(f"{path}: {problems}") from error

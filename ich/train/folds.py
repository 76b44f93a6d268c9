"""K-fold cross-validation, as the paper's: every study is predicted by the one model that
never trained on it, and the pooled predictions are written for evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ich.evaluate.cases import labelled_case
from ich.model.runtime import Analyzer
from ich.train.cache import list_cases
from ich.train.config import TrainConfig
from ich.train.distributed import Distributed
from ich.train.loop import Progress, TrainingError, train

PREDICTIONS = "predictions.jsonl"


def fold_of(case_dirs: list[Path], folds: int, seed: int) -> np.ndarray:
    """The fold of each case: a seeded shuffle dealt round-robin (sizes differ by one at most)."""
    order = np.random.default_rng([seed, folds]).permutation(len(case_dirs))
    assignment = np.empty(len(case_dirs), dtype=np.int64)
    assignment[order] = np.arange(len(case_dirs)) % folds
    return assignment


def cross_validate(
    config: TrainConfig,
    out: Path,
    folds: int,
    resume: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Train ``folds`` models (``out/fold_K``) and write ``out/predictions.jsonl``: one line per
    study with its fold and the exam result (label volume included) of its held-out model."""
    case_dirs = [c for d in config.data for c in list_cases(d)]
    if len(case_dirs) < folds:
        raise TrainingError(f"{len(case_dirs)} studies cannot make {folds} folds")
    assignment = fold_of(case_dirs, folds, config.seed)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for fold in range(folds):
        training = [c for c, f in zip(case_dirs, assignment, strict=True) if f != fold]
        model = train(config, out / f"fold_{fold}", resume, training, progress)
        if not Distributed.from_env().main:
            continue  # the other data-parallel processes only train
        analyzer = Analyzer(model)
        for case_dir in (c for c, f in zip(case_dirs, assignment, strict=True) if f == fold):
            case = labelled_case(case_dir)
            result, _ = analyzer(case.volume, label_volume=True)
            lines.append(
                {"case": str(case_dir), "fold": fold, "result": result.model_dump(mode="json")}
            )
    path = out / PREDICTIONS
    if Distributed.from_env().main:
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path

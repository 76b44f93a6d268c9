"""K-fold cross-validation at patient level, as the paper's: every study is predicted by the
one model that never trained on its patient, and the pooled out-of-fold predictions give the
report and the operating point of the model trained on everything.

Folds are dealt over patients, never studies, and stratified by whether the patient has blood,
so every fold holds positives and negatives. With ``fold_data`` only those studies (the real
ones) are folded; the config's own data (synthetic) train every fold, but for synthetic studies
made on a held-out patient's head, which that fold leaves out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ich.evaluate.cases import labelled_case
from ich.evaluate.operating import choose_operating_point
from ich.evaluate.report import write_report
from ich.evaluate.runner import ExamOutcome, outcome
from ich.model.analyzer import Analyzer
from ich.phantom.dataset import patient_key
from ich.train.cache import list_cases
from ich.train.config import TrainConfig
from ich.train.distributed import Distributed
from ich.train.loop import Progress, TrainingError, train

PREDICTIONS = "predictions.jsonl"
OPERATING_POINT = "operating_point.json"
FOLDS = "folds.json"
REPORT = "report"


def patient_of(case_dir: Path) -> str:
    """The patient a study belongs to (:func:`patient_key`), else the study itself."""
    record = case_dir / "truth" / "case.json"
    if record.is_file():
        patient = patient_key(json.loads(record.read_text()))
        if patient is not None:
            return patient
    return str(case_dir.resolve())


def _has_blood(case_dir: Path) -> bool:
    record = case_dir / "truth" / "case.json"
    return bool(record.is_file() and json.loads(record.read_text()).get("hemorrhage"))


def fold_of(patients: Sequence[str], positive: Sequence[bool], folds: int, seed: int) -> np.ndarray:
    """The fold of each study: its patient's. Patients are shuffled (seeded) within positive
    and negative ones and dealt round-robin, so fold sizes and positives differ by one at most.

    Raises:
        TrainingError: fewer patients than folds.
    """
    unique = sorted(set(patients))
    if len(unique) < folds:
        raise TrainingError(f"{len(unique)} patients cannot make {folds} folds")
    sick = {p for p, s in zip(patients, positive, strict=True) if s}
    rng = np.random.default_rng([seed, folds])
    groups = (sorted(sick), sorted(set(unique) - sick))
    order = [p for group in groups for p in rng.permutation(group)]
    of_patient = {p: i % folds for i, p in enumerate(order)}
    return np.array([of_patient[p] for p in patients], dtype=np.int64)


def cross_validate(
    config: TrainConfig,
    out: Path,
    folds: int,
    resume: bool = False,
    progress: Progress | None = None,
    fold_data: Sequence[Path] = (),
) -> Path:
    """Train ``folds`` models (``out/fold_K``) and write ``out/predictions.jsonl`` (one line per
    held-out study: its fold and exam result, label volume included), the pooled out-of-fold
    report (``out/report``) and the operating point chosen on it (``out/operating_point.json``).

    A fold whose model is already written is not trained again, so an interrupted run resumes
    (with ``resume``, the fold in progress continues from its checkpoint).
    """
    always = [c for d in config.data for c in list_cases(d)] if fold_data else []
    folded = [c for d in (fold_data or config.data) for c in list_cases(d)]
    patients = [patient_of(c) for c in folded]
    assignment = fold_of(patients, [_has_blood(c) for c in folded], folds, config.seed)
    out.mkdir(parents=True, exist_ok=True)
    dist = Distributed.from_env()
    if dist.main:
        (out / FOLDS).write_text(
            json.dumps(
                {"folds": folds, "seed": config.seed,
                 "cases": [{"case": str(c), "patient": p, "fold": int(f)}
                           for c, p, f in zip(folded, patients, assignment, strict=True)]},
                indent=2,
            ) + "\n"
        )  # fmt: skip
    _check_fold_init(config, folded, assignment)
    lines, outcomes = [], []
    always_patients = [patient_of(c) for c in always]
    for fold in range(folds):
        held_out = [c for c, f in zip(folded, assignment, strict=True) if f == fold]
        # Synthetic studies made on a held-out patient's head stay out of that fold's training.
        kept_out = {p for p, f in zip(patients, assignment, strict=True) if f == fold}
        training = [c for c, p in zip(always, always_patients, strict=True) if p not in kept_out]
        training += [c for c, f in zip(folded, assignment, strict=True) if f != fold]
        model = out / f"fold_{fold}" / "model.pt"
        if not model.is_file():
            model = train(
                _fold_config(config, fold), out / f"fold_{fold}", resume, training, progress
            )
        if not dist.main:
            continue  # the other data-parallel processes only train
        analyzer = Analyzer(model)
        for case_dir in held_out:
            case = labelled_case(case_dir)
            result, predicted = analyzer(case.volume, label_volume=True)
            outcomes.append(outcome(case, result, predicted))
            lines.append(
                {"case": str(case_dir), "fold": fold, "result": result.model_dump(mode="json")}
            )
    path = out / PREDICTIONS
    if dist.main:
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        write_out_of_fold(outcomes, config, out, folds, _citations(fold_data or config.data))
    return path


def _fold_config(config: TrainConfig, fold: int) -> TrainConfig:
    """The config of one fold: with ``fold_init``, it starts from that fold's earlier model."""
    if config.fold_init is None:
        return config
    return config.model_copy(update={"init": config.fold_init / f"fold_{fold}" / "model.pt"})


def _check_fold_init(config: TrainConfig, folded: Sequence[Path], assignment: np.ndarray) -> None:
    """A fold may only continue from a model that never saw its held-out patients: the earlier
    cross-validation must have dealt the same studies into the same folds, and finished them.

    Raises:
        TrainingError: the earlier run is missing, unfinished, or folded differently.
    """
    if config.fold_init is None:
        return
    record = config.fold_init / FOLDS
    if not record.is_file():
        raise TrainingError(
            f"fold_init {config.fold_init} holds no {FOLDS}: give the folder of an earlier "
            "cross-validation (`ich train --folds`)"
        )
    earlier = {c["case"]: c["fold"] for c in json.loads(record.read_text())["cases"]}
    now = {str(c): int(f) for c, f in zip(folded, assignment, strict=True)}
    if earlier != now:
        raise TrainingError(
            f"{record} deals the studies into other folds than this run (seed {config.seed}); "
            "continuing from its models would train on held-out patients"
        )
    missing = sorted({f for f in now.values()
                      if not (config.fold_init / f"fold_{f}" / "model.pt").is_file()})  # fmt: skip
    if missing:
        raise TrainingError(
            f"{config.fold_init} has no model for fold(s) {missing}: finish that run first"
        )


def _citations(folders: Sequence[Path]) -> list[str]:
    """The data sets' own citations (``ich import-ctich`` writes one into its manifest)."""
    found = []
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("citation") and manifest["citation"] not in found:
            found.append(manifest["citation"])
    return found


def write_out_of_fold(
    outcomes: list[ExamOutcome],
    config: TrainConfig,
    out: Path,
    folds: int,
    citations: Sequence[str] = (),
) -> None:
    """The operating point chosen on the pooled out-of-fold outcomes, and their report (whose
    flags use that same point: sensitivity and specificity there are where it was chosen)."""
    point = choose_operating_point(
        outcomes,
        config.min_specificity,
        f"{folds}-fold patient-level cross-validation (out-of-fold predictions)",
    )
    (out / OPERATING_POINT).write_text(point.model_dump_json(indent=2) + "\n")
    write_report(
        outcomes,
        point,
        out / REPORT,
        f"{folds}-fold patient-level cross-validation, pooled out-of-fold predictions",
        notes=[
            f"Every exam was predicted by the fold model that never trained on its patient. "
            f"The operating point (most sensitive thresholds keeping specificity >= "
            f"{config.min_specificity}) was chosen on these same predictions.",
            *(f"Data: {c}" for c in citations),
        ],
    )

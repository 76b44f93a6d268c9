"""The training loop: balanced planes, AdamW with warm-up and cosine decay, checkpoints that
resume, periodic validation, and the model file with its operating point at the end."""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ich.errors import IchError
from ich.evaluate.cases import LabelledCase, labelled_case
from ich.evaluate.operating import choose_operating_point, read_operating_point
from ich.model.checkpoint import load_model, save_model
from ich.model.detector import Detector
from ich.model.grow import GrowthError, check_growable, load_grown
from ich.model.mask_rcnn import build_mask_rcnn
from ich.train.cache import CachedCase, cache_cases, list_cases
from ich.train.config import TrainConfig
from ich.train.dataset import PlaneStacks, collate
from ich.train.distributed import Distributed
from ich.train.mining import detection_scores
from ich.train.sampling import BalancedSampler
from ich.train.validate import validation_metrics, validation_outcomes

LAST = "last.pt"
BEST = "best.pt"
MODEL = "model.pt"
LOG = "log.jsonl"


class TrainingError(IchError):
    code = "training_failed"
    title = "Training failed"


@dataclass
class Progress:
    """Hooks for a progress display (the CLI passes a rich bar; tests pass nothing)."""

    on_cache: Callable[[int], Callable[[], None]] | None = None
    on_step: Callable[[int, dict[str, float]], None] | None = None


def _schedule(config: TrainConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        done = (step - config.warmup) / max(1, config.steps - config.warmup)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, done)))

    return factor


def _to(
    targets: list[dict[str, torch.Tensor]], device: torch.device
) -> list[dict[str, torch.Tensor]]:
    return [{k: v.to(device) for k, v in t.items()} for t in targets]


def _finite(value: Any) -> Any:
    """NaN (a metric with no cases) as null: the log stays strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


@dataclass
class _State:
    """What a checkpoint holds: the weights, the optimiser and schedule, and the step; plus
    the best validation score so far."""

    network: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    step: int = 0
    best: float = -math.inf

    def save(self, out: Path) -> None:
        """Written aside, then renamed: an interrupted save leaves the last one whole."""
        state = {
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
        }
        torch.save(state, out / (LAST + ".tmp"))
        (out / (LAST + ".tmp")).replace(out / LAST)

    def restore(self, out: Path, device: torch.device) -> None:
        state = torch.load(out / LAST, map_location=device, weights_only=True)
        try:
            self.network.load_state_dict(state["network"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError) as error:
            raise TrainingError(
                f"{out / LAST} was written for another model configuration ({error}); "
                "train into a new --out folder, or leave out --resume to start over there"
            ) from error
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        if (out / BEST).is_file():  # validated after the last checkpoint, perhaps
            kept = torch.load(out / BEST, map_location="cpu", weights_only=True)
            self.best = float(kept["provenance"]["score"])


class _Log:
    """The run's JSON-lines log (written by the main process only; NaN as null)."""

    def __init__(self, path: Path | None) -> None:
        self.file = path.open("a") if path is not None else None

    def write(self, record: dict[str, Any]) -> None:
        if self.file is not None:
            self.file.write(json.dumps(_finite(record)) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def train(
    config: TrainConfig,
    out: Path,
    resume: bool = False,
    case_dirs: list[Path] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Train; returns the model file (``out/model.pt``). ``case_dirs`` overrides the config's
    data folders (cross-validation trains on a subset of cases). Under ``torchrun`` the
    process group stays up for the caller (see :func:`ich.train.distributed.Distributed`)."""
    progress = progress or Progress()
    dist = Distributed.from_env()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed + dist.rank)
    if case_dirs is None:
        case_dirs = [c for d in config.data for c in list_cases(d)]
    cases = _cached(config, case_dirs, dist, progress)
    state = _initial_state(config, dist.device)
    hardness = None
    if config.hard_negatives == "mined":  # by the init weights, before a resume replaces them
        hardness = detection_scores(state.network, config.model, cases)
    if resume and (out / LAST).is_file():
        state.restore(out, dist.device)
    model = dist.wrap(state.network)
    batches = iter(_loader(config, cases, dist, state.step, hardness))
    validation: list[LabelledCase] = []
    if dist.main and config.validation is not None:
        validation = [labelled_case(c) for c in list_cases(config.validation)]
    log = _Log(out / LOG if dist.main else None)
    log.write({"event": "start", "step": state.step, "config": config.model_dump(mode="json"),
               "cases": len(cases), "world_size": dist.world, "device": str(dist.device),
               "resumed": state.step > 0})  # fmt: skip
    model.train()
    running: dict[str, float] = {}
    started = time.perf_counter()
    while state.step < config.steps:
        losses = _step(config, model, state, next(batches), dist.device)
        for key, value in losses.items():
            running[key] = running.get(key, 0.0) + value
        if progress.on_step and dist.main:
            progress.on_step(state.step, losses)
        if state.step % config.log_every == 0 or state.step == config.steps:
            _log_losses(config, log, state, running, time.perf_counter() - started)
            running, started = {}, time.perf_counter()
        if validation and (state.step % config.validate_every == 0 or state.step == config.steps):
            _validate(config, state, validation, log, out)
        if dist.main and (state.step % config.checkpoint_every == 0 or state.step == config.steps):
            state.save(out)
    log.write({"event": "end", "step": state.step, "replicas_in_sync": dist.in_sync(state.network)})
    if dist.main:
        _final_model(config, state.network, validation, out, len(case_dirs))
    log.close()
    dist.barrier()
    return out / MODEL


def _cached(
    config: TrainConfig, case_dirs: list[Path], dist: Distributed, progress: Progress
) -> list[CachedCase]:
    """The cases on the model grid: built by the main process, then read by the others."""
    if not case_dirs:
        raise TrainingError("no training cases: the data folders list none")
    spec = config.model.input
    tick = progress.on_cache(len(case_dirs)) if progress.on_cache and dist.main else None
    if dist.main:
        cases = cache_cases(case_dirs, spec, config.cache, config.cache_workers, tick)
    dist.barrier()
    if not dist.main:
        cases = cache_cases(case_dirs, spec, config.cache)
    return cases


def _initial_state(config: TrainConfig, device: torch.device) -> _State:
    """A new network (from ``config.init`` when fine-tuning), AdamW and its schedule."""
    network = build_mask_rcnn(config.model)
    if config.init is not None:
        _start_from(network, config)
    network = network.to(device)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    return _State(
        network, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    )


def _loader(
    config: TrainConfig,
    cases: list[CachedCase],
    dist: Distributed,
    step: int,
    hardness: np.ndarray | None = None,
) -> DataLoader:
    """Balanced planes without end; each process and each resumed step draws anew."""
    sampler = BalancedSampler(
        cases,
        config.negative_fraction,
        config.seed,
        dist.rank,
        step,
        config.real_fraction,
        config.hard_fraction,
        hardness,
    )
    stacks = PlaneStacks(
        cases,
        config.model.input,
        config.augment,
        seed=config.seed * 7919 + dist.rank * 104729 + step,
        window_fraction=config.window_fraction,
    )
    return DataLoader(
        stacks,
        batch_size=config.batch,
        sampler=sampler,
        num_workers=config.workers,
        collate_fn=collate,
        persistent_workers=config.workers > 0,
    )


def _step(
    config: TrainConfig,
    model: torch.nn.Module,
    state: _State,
    batch: tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]],
    device: torch.device,
) -> dict[str, float]:
    """One optimiser step (bfloat16 autocast on CUDA); the losses it took."""
    images, targets = batch
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if config.amp and device.type == "cuda"
        else nullcontext()
    )
    with amp:
        losses = model([i.to(device) for i in images], _to(targets, device))
    loss = sum(losses.values())
    if not torch.isfinite(loss):
        raise TrainingError(
            f"loss became {loss.item()} at step {state.step}: lower lr ({config.lr}) or check data"
        )
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(state.network.parameters(), 10.0)
    state.optimizer.step()
    state.scheduler.step()
    state.step += 1
    return {k: float(v.detach()) for k, v in losses.items()}


def _log_losses(
    config: TrainConfig, log: _Log, state: _State, running: dict[str, float], elapsed: float
) -> None:
    """Mean losses and seconds per step since the last line."""
    count = (
        config.log_every if state.step % config.log_every == 0 else state.step % config.log_every
    )
    log.write({"event": "train", "step": state.step, "lr": state.scheduler.get_last_lr()[0],
               "loss": {k: v / count for k, v in running.items()},
               "seconds_per_step": elapsed / count})  # fmt: skip


def _validate(
    config: TrainConfig, state: _State, validation: list[LabelledCase], log: _Log, out: Path
) -> None:
    """Score the validation studies; keep the weights when they score best so far."""
    outcomes = validation_outcomes(
        Detector.for_config(state.network, config.model), config.model, validation
    )
    metrics = validation_metrics(outcomes)
    log.write({"event": "validation", "step": state.step, **metrics})
    if metrics["score"] > state.best:
        state.best = metrics["score"]
        provenance = {"step": state.step, **metrics}
        save_model(out / BEST, state.network, config.model, provenance=provenance)
    state.network.train()


def _start_from(network: torch.nn.Module, config: TrainConfig) -> None:
    """Load ``config.init``'s weights: a model file of the same configuration, or of one
    with fewer blocks per stage (the network grows, see :mod:`ich.model.grow`).

    Raises:
        ModelFileError: the file is unreadable.
        TrainingError: it was made for another model configuration.
    """
    assert config.init is not None
    loaded, model_config, _, _ = load_model(config.init)
    if model_config == config.model:
        network.load_state_dict(loaded.state_dict())
        return
    try:
        check_growable(model_config, config.model)
        load_grown(network, loaded.state_dict(), model_config)
    except GrowthError as error:
        raise TrainingError(
            f"{config.init} was made for another model configuration ({error}); fine-tuning "
            "needs the same one, or the same with blocks appended to its stages (copy its "
            "`model:` section into the training config)"
        ) from error


def _final_model(
    config: TrainConfig,
    network: torch.nn.Module,
    validation: list[LabelledCase],
    out: Path,
    cases: int,
) -> None:
    """The best validated weights (else the last) with thresholds chosen on validation."""
    provenance: dict[str, Any] = {
        "name": config.name,
        "steps": config.steps,
        "training_cases": cases,
        "data": [str(d) for d in config.data],
        "validation": None if config.validation is None else str(config.validation),
        "seed": config.seed,
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    operating_point = None
    if config.operating_point is not None:
        operating_point = read_operating_point(config.operating_point)
        provenance["operating_point_from"] = str(config.operating_point)
    if validation:
        if (out / BEST).is_file():
            best = torch.load(out / BEST, map_location="cpu", weights_only=True)
            network.load_state_dict(best["state_dict"])
            provenance["selected_step"] = best["provenance"]["step"]
        outcomes = validation_outcomes(
            Detector.for_config(network, config.model), config.model, validation
        )
        provenance["validation_metrics"] = validation_metrics(outcomes)
        if operating_point is None:
            operating_point = choose_operating_point(
                outcomes, config.min_specificity, f"validation set {config.validation}"
            )
    save_model(out / MODEL, network.cpu(), config.model, operating_point, provenance)

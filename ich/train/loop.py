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

import torch
from torch.utils.data import DataLoader

from ich.errors import IchError
from ich.evaluate.cases import LabelledCase, labelled_case
from ich.evaluate.operating import choose_operating_point, read_operating_point
from ich.model.checkpoint import load_model, save_model
from ich.model.detector import Detector
from ich.model.mask_rcnn import build_mask_rcnn
from ich.train.cache import cache_cases, list_cases
from ich.train.config import TrainConfig
from ich.train.dataset import PlaneStacks, collate
from ich.train.distributed import Distributed
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
    spec = config.model.input
    case_dirs = (
        case_dirs if case_dirs is not None else [c for d in config.data for c in list_cases(d)]
    )
    if not case_dirs:
        raise TrainingError("no training cases: the data folders list none")
    tick = progress.on_cache(len(case_dirs)) if progress.on_cache and dist.main else None
    if dist.main:
        cases = cache_cases(case_dirs, spec, config.cache, config.cache_workers, tick)
    dist.barrier()
    if not dist.main:
        cases = cache_cases(case_dirs, spec, config.cache)

    network = build_mask_rcnn(config.model)
    if config.init is not None:
        _start_from(network, config)
    network = network.to(dist.device)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    step, best = 0, -math.inf
    if resume and (out / LAST).is_file():
        state = torch.load(out / LAST, map_location=dist.device, weights_only=True)
        try:
            network.load_state_dict(state["network"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError) as error:
            raise TrainingError(
                f"{out / LAST} was written for another model configuration ({error}); "
                "train into a new --out folder, or leave out --resume to start over there"
            ) from error
        scheduler.load_state_dict(state["scheduler"])
        step = int(state["step"])
        if (out / BEST).is_file():  # validated after the last checkpoint, perhaps
            kept = torch.load(out / BEST, map_location="cpu", weights_only=True)
            best = float(kept["provenance"]["score"])
    model = dist.wrap(network)
    sampler = BalancedSampler(
        cases,
        config.negative_fraction,
        config.seed,
        dist.rank,
        step,
        config.real_fraction,
        config.hard_fraction,
    )
    loader = DataLoader(
        PlaneStacks(
            cases,
            spec,
            config.augment,
            seed=config.seed * 7919 + dist.rank * 104729 + step,
            window_fraction=config.window_fraction,
        ),
        batch_size=config.batch,
        sampler=sampler,
        num_workers=config.workers,
        collate_fn=collate,
        persistent_workers=config.workers > 0,
    )
    validation: list[LabelledCase] = []
    if dist.main and config.validation is not None:
        validation = [labelled_case(c) for c in list_cases(config.validation)]
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if config.amp and dist.device.type == "cuda"
        else nullcontext()
    )
    log = (out / LOG).open("a") if dist.main else None

    def write(record: dict[str, Any]) -> None:
        if log is not None:
            log.write(json.dumps(_finite(record)) + "\n")
            log.flush()

    write({"event": "start", "step": step, "config": config.model_dump(mode="json"),
           "cases": len(cases), "world_size": dist.world, "device": str(dist.device),
           "resumed": step > 0})  # fmt: skip
    model.train()
    running: dict[str, float] = {}
    started = time.perf_counter()
    batches = iter(loader)
    while step < config.steps:
        images, targets = next(batches)
        with amp:
            losses = model([i.to(dist.device) for i in images], _to(targets, dist.device))
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise TrainingError(
                f"loss became {loss.item()} at step {step}: lower lr ({config.lr}) or check data"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 10.0)
        optimizer.step()
        scheduler.step()
        step += 1
        for key, value in losses.items():
            running[key] = running.get(key, 0.0) + float(value.detach())
        if progress.on_step and dist.main:
            progress.on_step(step, {k: float(v.detach()) for k, v in losses.items()})
        if step % config.log_every == 0 or step == config.steps:
            count = config.log_every if step % config.log_every == 0 else step % config.log_every
            elapsed = time.perf_counter() - started
            write({"event": "train", "step": step, "lr": scheduler.get_last_lr()[0],
                   "loss": {k: v / count for k, v in running.items()},
                   "seconds_per_step": elapsed / count})  # fmt: skip
            running, started = {}, time.perf_counter()
        if validation and (step % config.validate_every == 0 or step == config.steps):
            outcomes = validation_outcomes(
                Detector.for_config(network, config.model), config.model, validation
            )
            metrics = validation_metrics(outcomes)
            write({"event": "validation", "step": step, **metrics})
            if metrics["score"] > best:
                best = metrics["score"]
                save_model(out / BEST, network, config.model, provenance={"step": step, **metrics})
            network.train()
        if dist.main and (step % config.checkpoint_every == 0 or step == config.steps):
            torch.save({"network": network.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "step": step},
                       out / (LAST + ".tmp"))  # fmt: skip
            (out / (LAST + ".tmp")).replace(out / LAST)
    in_sync = dist.in_sync(network)
    write({"event": "end", "step": step, "replicas_in_sync": in_sync})
    if dist.main:
        _final_model(config, network, validation, out, len(case_dirs))
    if log is not None:
        log.close()
    dist.barrier()
    return out / MODEL


def _start_from(network: torch.nn.Module, config: TrainConfig) -> None:
    """Load ``config.init``'s weights: a model file of the same configuration.

    Raises:
        ModelFileError: the file is unreadable.
        TrainingError: it was made for another model configuration.
    """
    assert config.init is not None
    loaded, model_config, _, _ = load_model(config.init)
    if model_config != config.model:
        raise TrainingError(
            f"{config.init} was made for another model configuration; fine-tuning needs the "
            "same one (copy its `model:` section into the training config)"
        )
    network.load_state_dict(loaded.state_dict())


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

"""Model commands: train, analyse a study, evaluate."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ich.cli.app import app, console, err_console, fail
from ich.dicom import load
from ich.errors import IchError
from ich.schema import ExamResult

if TYPE_CHECKING:  # torch is imported by the commands that need it, not by `ich --help`
    from ich.model.analyzer import Analyzer


_CONFIGS = Path(__file__).parents[1] / "train" / "configs"


def _config_path(value: str) -> Path:
    """A config file, or the name of a bundled one (tiny, cpu, gpu)."""
    path = Path(value)
    if not path.exists() and (_CONFIGS / f"{value}.yaml").is_file():
        return _CONFIGS / f"{value}.yaml"
    return path


@app.command("train")
def train_command(
    config: Annotated[
        str, typer.Option(help="YAML config file, or a bundled one: tiny, cpu, gpu.")
    ],
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/NAME).")] = None,
    data: Annotated[
        list[Path] | None, typer.Option(help="`ich synth` folders, replacing the config's.")
    ] = None,
    validation: Annotated[
        Path | None, typer.Option(help="Validation folder, replacing the config's.")
    ] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Steps, replacing the config's.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/last.pt.")] = False,
    folds: Annotated[
        int | None, typer.Option(min=2, max=20, help="Cross-validate: train K models.")
    ] = None,
    fold_data: Annotated[
        list[Path] | None,
        typer.Option(
            help="With --folds: only these folders (real patients) are folded; the config's "
            "data train every fold."
        ),
    ] = None,
    operating_point: Annotated[
        Path | None,
        typer.Option(help="Store this operating point (a cross-validation's) in the model."),
    ] = None,
) -> None:
    """Train the detector (several processes: `torchrun --nproc-per-node N -m ich train ...`)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ich.train.config import load_config
    from ich.train.distributed import Distributed
    from ich.train.folds import cross_validate
    from ich.train.loop import Progress as Hooks
    from ich.train.loop import train

    try:
        settings = load_config(_config_path(config))
        updates: dict = {}
        if data:
            updates["data"] = tuple(data)
        if validation is not None:
            updates["validation"] = validation
        if steps is not None:
            updates["steps"] = steps
        if operating_point is not None:
            updates["operating_point"] = operating_point
        if fold_data and not folds:
            raise typer.BadParameter("--fold-data needs --folds")
        settings = settings.model_validate({**settings.model_dump(), **updates})
        run_dir = out or Path("runs") / settings.name
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} {task.fields[loss]}"),
            TimeRemainingColumn(),
            console=err_console,
        ) as bar:

            def on_cache(total: int) -> Callable[[], None]:
                task = bar.add_task("caching studies", total=total, loss="")
                return lambda: bar.advance(task)

            training = bar.add_task("training", total=settings.steps, loss="", visible=False)

            def on_step(step: int, losses: dict[str, float]) -> None:
                loss = f"loss {sum(losses.values()):.3f}"
                bar.update(training, completed=step, loss=loss, visible=True)

            hooks = Hooks(on_cache, on_step)
            if folds:
                written = cross_validate(settings, run_dir, folds, resume, hooks, fold_data or ())
            else:
                written = train(settings, run_dir, resume, progress=hooks)
    except IchError as exc:
        raise fail(exc) from exc
    finally:
        Distributed.close()
    if os.environ.get("RANK", "0") == "0":  # one line from a data-parallel run, not one a process
        console.print(f"wrote {written}")


class TritonProtocol(StrEnum):
    grpc = "grpc"
    http = "http"


@app.command("analyze")
def analyze_command(
    path: Annotated[Path, typer.Argument(help="A study: folder, DICOM files, or a zip.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    overlays: Annotated[
        Path | None, typer.Option(help="Write PNG overlays of the findings into this folder.")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="Model file (default: the shipped CPU model).")
    ] = None,
    label_volume: Annotated[
        bool, typer.Option(help="Include the label volume in the JSON result.")
    ] = False,
    server: Annotated[
        str | None,
        typer.Option(help="Send the study to a Triton server (host:port) instead of running here."),
    ] = None,
    protocol: Annotated[TritonProtocol, typer.Option(help="Triton protocol for --server.")] = (
        TritonProtocol.grpc
    ),
) -> None:
    """Detect and measure hemorrhage in a head CT study, in this process or on a server."""
    try:
        if server is not None:
            if model is not None:
                raise typer.BadParameter("the server runs its own model: drop --model")
            from ich.serving.client import PipelineClient, study_files

            client = PipelineClient(server, protocol.value)
            try:
                result, label = client.analyze(study_files(path))
            finally:
                client.close()
            if label_volume:
                from ich.quantify.rle import encode_label_volume

                result = result.model_copy(update={"label_volume": encode_label_volume(label)})
            volume = load(path) if overlays is not None else None
        else:
            from ich.model.analyzer import Analyzer
            from ich.model.checkpoint import DEFAULT_MODEL

            volume = load(path)
            result, label = Analyzer(model or DEFAULT_MODEL)(volume, label_volume=label_volume)
        written = []
        if overlays is not None and volume is not None:
            from ich.overlays import write_overlays

            written = write_overlays(volume.hu, label, result, overlays)
    except IchError as exc:
        raise fail(exc) from exc
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        _print_result(result)
    if overlays is not None:
        err_console.print(f"{len(written)} overlay(s) in {overlays}")


def _print_result(result: ExamResult) -> None:
    flag = "[bold red]ICH FLAGGED[/]" if result.any_ich_flagged else "[green]no ICH flagged[/]"
    console.print(
        f"{flag}  any-ICH probability {result.any_ich_probability:.3f} "
        f"(threshold {result.any_ich_threshold:.3f})"
    )
    table = Table(title="hemorrhages")
    for column in ("#", "class", "score", "volume mL", "stratum", "planes", "ABC/2 mL"):
        table.add_column(column)
    for h in result.hemorrhages:
        table.add_row(
            str(h.id), h.hemorrhage_class.value, f"{h.score:.2f}", f"{h.volume_ml:.2f}",
            h.stratum.value, f"{h.bbox_voxels[0] + 1}-{h.bbox_voxels[3]}",
            "" if h.abc2_ml is None else f"{h.abc2_ml:.2f}",
        )  # fmt: skip
    classes = Table(title="per class")
    for column in ("class", "probability", "flagged", "threshold", "count", "total mL"):
        classes.add_column(column)
    for f in result.classes:
        classes.add_row(
            f.hemorrhage_class.value, f"{f.probability:.3f}", "yes" if f.flagged else "no",
            f"{f.threshold:.3f}", str(f.count), f"{f.total_volume_ml:.2f}",
        )  # fmt: skip
    console.print(classes)
    if result.hemorrhages:
        console.print(table)
    for w in result.warnings:
        console.print(f"[yellow]warning[/] {w.code}: {escape(w.message)}")


@app.command("evaluate")
def evaluate_command(
    out: Annotated[Path, typer.Option(help="Report folder.")],
    data: Annotated[
        list[Path] | None, typer.Option(help="`ich synth` folders with ground truth.")
    ] = None,
    real: Annotated[
        Path | None,
        typer.Option(help="Real samples folder: Dice on CT-ICH and BHSD, AUC on RSNA slices."),
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="Model file (default: the shipped CPU model).")
    ] = None,
    resamples: Annotated[int, typer.Option(min=10, help="Bootstrap resamples.")] = 1000,
) -> None:
    """Evaluate a model: the paper's tables on labelled studies, and on real slices."""
    from rich.progress import Progress

    from ich.evaluate.cases import labelled_cases
    from ich.evaluate.report import write_report
    from ich.evaluate.runner import run
    from ich.model.analyzer import Analyzer
    from ich.model.checkpoint import DEFAULT_MODEL

    if not data and real is None:
        raise fail(IchError("give --data (labelled studies) and/or --real (real samples)"))
    try:
        analyzer = Analyzer(model or DEFAULT_MODEL)
        out.mkdir(parents=True, exist_ok=True)
        if data:
            with Progress(console=err_console, transient=True) as bar:
                task = bar.add_task("analysing studies", total=None)
                cases = (case for folder in data for case in labelled_cases(folder))
                outcomes = run(cases, analyzer, lambda _: bar.advance(task))
            title = f"Evaluation on {', '.join(str(d) for d in data)}"
            write_report(outcomes, analyzer.operating_point, out, title, resamples)
            console.print(f"{len(outcomes)} studies: report in {out / 'report.md'}")
        if real is not None:
            _real_slices(analyzer, real, out)
    except IchError as exc:
        raise fail(exc) from exc


def _real_slices(analyzer: Analyzer, real: Path, out: Path) -> None:
    from ich.evaluate.slices import ASSUMPTIONS, evaluate_slices

    results = evaluate_slices(
        analyzer.detect, analyzer.config.input, analyzer.operating_point, real
    )
    lines = [
        "# Real single slices",
        "",
        "Each slice is fed as a series of one plane: its 5-plane stack is the slice repeated.",
        "",
        "| source | slices | with blood | AUC | sensitivity | specificity | Dice (mean) "
        "| Dice (pooled) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for source, r in results.items():
        keys = ("auc", "sensitivity", "specificity", "dice_mean", "dice_pooled")
        cells = [f"{r[k]:.3f}" if not math.isnan(r[k]) else "n/a" for k in keys]
        lines.append(f"| {source} | {r['slices']} | {r['positive']} | " + " | ".join(cells) + " |")
    lines += ["", "Assumptions:", *[f"- {k}: {v}" for k, v in ASSUMPTIONS.items()], ""]
    (out / "real_slices.md").write_text("\n".join(lines))
    (out / "real_slices.json").write_text(
        json.dumps({k: {m: (None if isinstance(v, float) and math.isnan(v) else v)
                        for m, v in r.items()} for k, r in results.items()}, indent=2) + "\n"
    )  # fmt: skip
    print("\n".join(lines))

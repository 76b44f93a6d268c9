"""The `ich` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from export.formats import Format, Target
from ich import __version__
from ich.dicom import DicomInputError, SelectionPolicy, inspect, load
from ich.errors import IchError
from ich.schema import ExamResult, InspectionReport, VolumeSummary

if TYPE_CHECKING:  # torch is imported by the commands that need it, not by `ich --help`
    from sqlalchemy import Engine

    from ich.model.runtime import Analyzer

app = typer.Typer(
    name="ich",
    help="Detection and volumetry of acute intracranial hemorrhage on head CT.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def _fail(exc: IchError) -> typer.Exit:
    err_console.print(f"[bold red]{exc.title}[/]: {escape(exc.message)}")
    return typer.Exit(code=2)


def _print_version(value: bool) -> None:
    if value:
        console.print(__version__)
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show version."),
    ] = False,
) -> None:
    """Detection and volumetry of acute intracranial hemorrhage on head CT."""


def _series_table(report: InspectionReport) -> Table:
    table = Table(
        title=f"{report.images} image(s) in {len(report.series)} series, "
        f"{report.studies} study(ies), {report.files} file(s)"
    )
    for column in (
        "",
        "#",
        "description",
        "mod.",
        "orientation",
        "images",
        "pixel mm",
        "spacing mm",
        "kernel",
        "eligible",
    ):
        table.add_column(column)
    for s in report.series:
        tilt = f" {s.plane_tilt_deg:.1f}°" if s.plane_tilt_deg else ""
        table.add_row(
            "[bold green]>[/]" if s.selected else "",
            str(s.series_number or ""),
            escape(s.description),
            s.modality,
            s.orientation.lower() + tilt,
            str(s.images),
            f"{s.pixel_spacing_mm[0]:.3f}" if s.pixel_spacing_mm else "-",
            f"{s.slice_spacing_mm:.3f}" if s.slice_spacing_mm else "-",
            escape(s.kernel or "-") + f" ({s.kernel_class})",
            "[green]yes[/]" if s.eligible else "[red]no[/]",
        )
    return table


def _print_report(report: InspectionReport) -> None:
    console.print(_series_table(report))
    for s in report.series:
        if s.reasons:
            console.print(
                f"series {s.series_number or '?'} not eligible: " + escape("; ".join(s.reasons))
            )
    for skipped in report.skipped:
        console.print(f"[dim]skipped {escape(skipped.name)}: {escape(skipped.reason)}[/]")
    for w in report.warnings:
        console.print(f"[yellow]warning[/] {escape(w.code)}: {escape(w.message)}")
    if report.selected_series_uid:
        console.print(f"[bold]selected series[/] {report.selected_series_uid}")


def _policy(path: Path | None, **overrides: object) -> SelectionPolicy:
    """The policy from a JSON file (if any), with the command-line options that were given."""
    try:
        base = SelectionPolicy.model_validate_json(path.read_text()) if path else SelectionPolicy()
    except ValidationError as exc:
        err_console.print(f"[bold red]Invalid policy file[/] {path}: {escape(str(exc))}")
        raise typer.Exit(code=2) from exc
    given = {key: value for key, value in overrides.items() if value is not None}
    return base.model_copy(update=given)


def _print_volume(v: VolumeSummary) -> None:
    (z, y, x), (dz, dy, dx), (p1, p50, p99) = v.shape, v.spacing_mm, v.hu_percentiles_1_50_99
    console.print(
        f"[bold]volume[/] {z}x{y}x{x} voxels of {dz:.3f}x{dy:.3f}x{dx:.3f} mm, "
        f"{v.interpolated_planes} interpolated plane(s), HU p1/p50/p99 "
        f"{p1:.0f}/{p50:.0f}/{p99:.0f}"
        + (" [yellow](approximate geometry)[/]" if v.approximate else "")
    )


@app.command("inspect")
def inspect_command(
    path: Annotated[Path, typer.Argument(help="A folder, a zip, or one DICOM file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    decode: Annotated[
        bool, typer.Option("--decode", help="Also decode the selected series and print HU stats.")
    ] = False,
    policy_file: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            exists=True,
            dir_okay=False,
            help="JSON file of selection-policy fields (see ich.dicom.SelectionPolicy).",
        ),
    ] = None,
    allow_contrast: Annotated[
        bool | None, typer.Option(help="Accept contrast-enhanced series.", show_default=False)
    ] = None,
    series_uid: Annotated[
        str | None, typer.Option(help="Analyse this SeriesInstanceUID only.")
    ] = None,
) -> None:
    """List the series found, the one selected for analysis, and the warnings."""
    policy = _policy(policy_file, allow_contrast=allow_contrast, series_uid=series_uid)
    report = inspect(path, policy)
    summary: VolumeSummary | None = None
    if decode and report.error is None:
        try:
            volume = load(path, policy)
        except DicomInputError as exc:
            raise _fail(exc) from exc
        summary = VolumeSummary(
            shape=volume.shape,
            spacing_mm=tuple(round(v, 4) for v in volume.spacing_mm),
            interpolated_planes=int((~volume.plane_is_source).sum()),
            hu_percentiles_1_50_99=tuple(np.percentile(volume.hu, [1, 50, 99]).tolist()),
            approximate=volume.approximate,
        )
    if as_json:
        payload = report.model_dump(mode="json")
        if summary is not None:
            payload["volume"] = summary.model_dump(mode="json")
        typer.echo(json.dumps(payload, indent=2))
    else:
        _print_report(report)
        if summary is not None:
            _print_volume(summary)
    if report.error is not None:
        err_console.print(f"[bold red]{report.error.title}[/]: {escape(report.error.detail)}")
        raise typer.Exit(code=2)


def _even(value: int) -> int:
    if value % 2:
        raise typer.BadParameter(f"{value} is odd; the matrix must be even (e.g. 256 or 512).")
    return value


def _default_real_dir() -> Path:
    """$ICH_REAL_DATA, else ``shared/data/real`` beside the checkout (the development layout)."""
    configured = os.environ.get("ICH_REAL_DATA")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


class Background(StrEnum):
    phantom = "phantom"
    real = "real"
    ctich = "ctich"


CTICH_DEFAULT = Path(".data/ctich")
"""Where `make real-data` converts CT-ICH to."""


@app.command("synth")
def synth_command(
    out: Annotated[Path, typer.Option(help="Folder to write the studies into.")],
    studies: Annotated[int, typer.Option(min=1, help="Number of studies.")] = 1,
    seed: Annotated[
        int, typer.Option(min=0, max=2**32 - 1, help="Same seed, same studies (byte for byte).")
    ] = 0,
    prevalence: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fraction of studies with hemorrhage.")
    ] = 0.5,
    background: Annotated[
        Background,
        typer.Option(
            help="Procedural phantom heads, real normal scans (CQ500, GE), or the CT-ICH heads "
            "without blood (stored in the brain window, and so are the studies made on them)."
        ),
    ] = Background.phantom,
    real_dir: Annotated[
        Path | None,
        typer.Option(
            help="Real samples for --background real (read, never copied); default "
            "$ICH_REAL_DATA, else the shared/data/real folder beside this checkout. For "
            f"--background ctich: a folder `ich import-ctich` wrote (default {CTICH_DEFAULT})."
        ),
    ] = None,
    slice_mm: Annotated[
        float | None, typer.Option(min=0.5, max=10, help="Slice thickness (default: drawn).")
    ] = None,
    matrix: Annotated[
        int, typer.Option(min=64, max=1024, callback=_even, help="Image matrix (even).")
    ] = 512,
    distractors: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Fraction of studies with scout/bone/contrast/MPR."),
    ] = 0.5,
    overwrite: Annotated[bool, typer.Option(help="Replace a data set already in --out.")] = False,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Processes making cases (same output as 1).")
    ] = 1,
) -> None:
    """Write synthetic head CT studies with ground-truth hemorrhage labels."""
    from rich.progress import Progress

    from ich.phantom.dataset import DatasetPlan, prepare_output, write_dataset
    from ich.phantom.generate import Case, CaseOptions
    from ich.phantom.generate import synthesize as phantom_case

    options = CaseOptions(prevalence=prevalence, slice_mm=slice_mm, matrix=matrix)
    synthesize: Callable[[int, int, CaseOptions], Case] = phantom_case
    if background is not Background.phantom:
        from ich.phantom.real_background import RealBackgrounds

        try:
            if background is Background.ctich:
                real = RealBackgrounds.ctich(real_dir or CTICH_DEFAULT)
            else:
                real = RealBackgrounds.shared(real_dir or _default_real_dir())
            real.eligible(options)  # loads and checks them now, before anything is written
        except IchError as exc:
            raise _fail(exc) from exc
        synthesize = real.synthesize
    settings = {
        "seed": seed,
        "studies": studies,
        "prevalence": prevalence,
        "background": background.value,
        "slice_mm": slice_mm,
        "matrix": matrix,
        "distractors": distractors,
    }
    positives = 0
    records: list[dict] = []
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("synthesizing", total=studies)

        def advance(record: dict) -> None:
            nonlocal positives
            positives += record["hemorrhage"]
            records.append(record)
            progress.advance(task)

        plan = DatasetPlan(seed, studies, synthesize, options, distractors)
        try:
            prepare_output(out, overwrite)
            write_dataset(out, plan, settings, on_case=advance, workers=workers)
        except IchError as exc:
            raise _fail(exc) from exc
        except OSError as exc:
            raise _fail(IchError(f"Writing to {out} failed: {exc}")) from exc
    console.print(_cases_table(records))
    console.print(
        f"wrote {studies} studies ({positives} with hemorrhage) to {out}; "
        f"ground truth in each case's truth/ and in {out / 'manifest.json'}"
    )


@app.command("import-ctich")
def import_ctich_command(
    out: Annotated[Path, typer.Option(help="Folder to write the labelled studies into.")],
    source: Annotated[
        Path | None,
        typer.Option(
            help="CT-ICH volumes folder (NNN/image.nii.gz, NNN/mask.nii.gz, slices.csv); "
            "default ctich_volumes/ in $ICH_REAL_DATA or the shared/data/real folder."
        ),
    ] = None,
) -> None:
    """Convert the CT-ICH whole-head scans into labelled studies for `ich train` and
    `ich evaluate` (DICOM as stored, class labels from the per-slice types)."""
    from rich.progress import Progress

    from ich.datasets.ctich import CITATION, import_ctich

    folder = source or _default_real_dir() / "ctich_volumes"
    records: list[dict] = []
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("converting", total=None)

        def advance(record: dict) -> None:
            records.append(record)
            progress.advance(task)

        try:
            import_ctich(folder, out, on_case=advance)
        except IchError as exc:
            raise _fail(exc) from exc
        except OSError as exc:
            raise _fail(IchError(f"Writing to {out} failed: {exc}")) from exc
    positives = sum(r["hemorrhage"] for r in records)
    console.print(
        f"wrote {len(records)} patients ({positives} with hemorrhage) to {out}; "
        f"HU as stored (-20..100), spacing approximate. Cite: {CITATION}"
    )


_SHOWN_CASES = 20


def _cases_table(records: list[dict]) -> Table:
    """The first cases of a written data set: series, bleeds with volume and stratum."""
    table = Table(title=f"first {min(len(records), _SHOWN_CASES)} of {len(records)} case(s)")
    for column in ("case", "series", "hemorrhage (mL, stratum)", "mimics", "shift mm"):
        table.add_column(column)
    for record in records[:_SHOWN_CASES]:
        protocol = record["protocol"]
        bleeds = ", ".join(
            f"{i['kind']} {i['volume_ml']:.3g} {i['stratum']}" for i in record["instances"]
        )
        table.add_row(
            record["case"],
            f"{protocol['slices']} x {protocol['slice_mm']:.3g} mm, {protocol['kernel']}",
            bleeds or "none",
            str(len(record["mimics"])),
            f"{record['midline_shift_mm']:g}",
        )
    return table


_CONFIGS = Path(__file__).parent / "train" / "configs"


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
        raise _fail(exc) from exc
    finally:
        Distributed.close()
    if os.environ.get("RANK", "0") == "0":  # one line from a data-parallel run, not one a process
        console.print(f"wrote {written}")


class Protocol(StrEnum):
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
    protocol: Annotated[Protocol, typer.Option(help="Triton protocol for --server.")] = (
        Protocol.grpc
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
            from ich.model.checkpoint import DEFAULT_MODEL
            from ich.model.runtime import Analyzer

            volume = load(path)
            result, label = Analyzer(model or DEFAULT_MODEL)(volume, label_volume=label_volume)
        written = []
        if overlays is not None and volume is not None:
            from ich.overlays import write_overlays

            written = write_overlays(volume.hu, label, result, overlays)
    except IchError as exc:
        raise _fail(exc) from exc
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
    from ich.model.checkpoint import DEFAULT_MODEL
    from ich.model.runtime import Analyzer

    if not data and real is None:
        raise _fail(IchError("give --data (labelled studies) and/or --real (real samples)"))
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
        raise _fail(exc) from exc


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


@app.command("export")
def export_command(
    fmt: Annotated[Format, typer.Option("--format", help="Detector file format.")] = (
        Format.torchscript
    ),
    target: Annotated[
        Target, typer.Option(help="cpu (bundled Triton) or gpu (NGC image).")
    ] = Target.cpu,
    model: Annotated[
        Path | None, typer.Option(help="Model file (default: the shipped CPU model).")
    ] = None,
    repository: Annotated[
        Path | None, typer.Option(help="Model repository to write (default: model_repository).")
    ] = None,
    fp16: Annotated[bool, typer.Option(help="TensorRT: build an FP16 engine.")] = False,
    check: Annotated[
        bool, typer.Option(help="Check ONNX/TensorRT outputs against PyTorch.")
    ] = True,
) -> None:
    """Export the detector and write the Triton model repository around it."""
    from export.repository import export_repository
    from ich.model.checkpoint import DEFAULT_MODEL
    from ich.serving.server import REPOSITORY

    try:
        done = export_repository(
            model or DEFAULT_MODEL, repository or REPOSITORY, fmt, target, check, fp16
        )
    except IchError as exc:
        raise _fail(exc) from exc
    for parity in done.parity:
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in parity.max_abs_diff.items())
        agree = "agree" if parity.detections_agree else "DISAGREE"
        console.print(f"{parity.runtime}: {parity.detections} detections {agree}; "
                      f"largest differences {diffs}")  # fmt: skip
    console.print(f"wrote {done.weights} and the configs of {done.repository}")


def _interrupt(*_: object) -> None:
    """Ctrl-C, SIGTERM and a closed terminal stop ``ich triton`` and its server (also where
    SIGINT was inherited ignored, as in background jobs)."""
    raise KeyboardInterrupt


@app.command("triton")
def triton_command(
    repository: Annotated[
        Path | None, typer.Option(help="Model repository (default: model_repository).")
    ] = None,
    http_port: Annotated[int, typer.Option(help="HTTP port on 127.0.0.1.")] = 8010,
    grpc_port: Annotated[int, typer.Option(help="gRPC port on 127.0.0.1.")] = 8011,
    metrics_port: Annotated[int, typer.Option(help="Metrics port on 127.0.0.1.")] = 8012,
) -> None:
    """Run the bundled Triton server with the model repository until interrupted."""
    import signal
    import time

    from ich.serving.server import REPOSITORY, ServerError, TritonServer

    server = TritonServer(repository or REPOSITORY, http_port, grpc_port, metrics_port)
    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _interrupt)
    try:
        server.start()
        console.print(f"Triton ready: HTTP {server.http_url}, gRPC {server.grpc_url} "
                      f"(pid {server.process.pid}, log {server.log}); Ctrl-C stops it")  # fmt: skip
        console.print(f"Analyse a study through it: ich analyze PATH --server {server.grpc_url}")
        while server.process.poll() is None:
            time.sleep(1)
        raise _fail(ServerError(f"tritonserver exited: {server.log_tail()}"))
    except KeyboardInterrupt:
        console.print("stopping Triton")
    except IchError as exc:
        raise _fail(exc) from exc
    finally:
        server.stop()


RECEIVE_PORT = 11112
"""The registered DICOM port (104 needs root)."""
DicomPort = Annotated[
    int | None,
    typer.Option(help="Also receive studies by DICOM C-STORE on this port (ICH_DICOM_PORT)."),
]
AeTitle = Annotated[str | None, typer.Option(help="The receiver's AE title (ICH_DICOM_AE_TITLE).")]
CallingAes = Annotated[
    list[str] | None,
    typer.Option("--allow", help="A calling AE title to accept (repeat; default any)."),
]


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address the gateway binds.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Gateway port.")] = 8000,
    triton: Annotated[
        bool, typer.Option(help="Start Triton here (else use ICH_TRITON_URL).")
    ] = True,
    repository: Annotated[Path | None, typer.Option(help="Model repository for Triton.")] = None,
    example: Annotated[
        Path | None, typer.Option(help="Study folder named in the examples.")
    ] = None,
    dicom_port: DicomPort = None,
    ae_title: AeTitle = None,
    allow: CallingAes = None,
) -> None:
    """Run Triton, the REST gateway and its database (SQLite, or DATABASE_URL) until Ctrl-C;
    with --dicom-port, the DICOM receiver too."""
    _serve(host, port, triton, repository, example, dicom_port, ae_title, allow)


@app.command("receive")
def receive_command(
    dicom_port: Annotated[
        int | None, typer.Option(help="C-STORE port (default ICH_DICOM_PORT, else 11112).")
    ] = None,
    ae_title: AeTitle = None,
    allow: CallingAes = None,
    host: Annotated[str, typer.Option(help="Address the gateway's REST API binds.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="REST port: worklist and results.")] = 8000,
    triton: Annotated[
        bool, typer.Option(help="Start Triton here (else use ICH_TRITON_URL).")
    ] = True,
) -> None:
    """Receive studies from PACS (DICOM C-STORE on 127.0.0.1 unless ICH_DICOM_HOST), analyse
    each complete study unattended; results, worklist and SEG/SR over the REST API."""
    import os

    port_default = int(os.environ.get("ICH_DICOM_PORT") or RECEIVE_PORT)
    _serve(host, port, triton, None, None, dicom_port or port_default, ae_title, allow)


def _serve(
    host: str,
    port: int,
    triton: bool,
    repository: Path | None,
    example: Path | None,
    dicom_port: int | None,
    ae_title: str | None,
    allow: list[str] | None,
) -> None:
    import signal

    from api.serve import serve
    from api.settings import Settings

    overrides: dict[str, object] = {}
    if dicom_port is not None:
        overrides["dicom_port"] = dicom_port
    if ae_title:
        overrides["dicom_ae_title"] = ae_title
    if allow:
        overrides["dicom_allowed_aes"] = tuple(allow)
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _interrupt)
    try:
        serve(Settings.from_env(**overrides), host, port, triton, repository, example)
    except KeyboardInterrupt:
        console.print("stopped")
    except IchError as exc:
        raise _fail(exc) from exc


keys_app = typer.Typer(help="API keys of the gateway's clients (one per client).")
app.add_typer(keys_app, name="keys")


def _engine() -> Engine:
    from api.db import connect
    from api.settings import Settings

    return connect(Settings.from_env().url)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who the key is for, e.g. the integration.")],
    scope: Annotated[
        list[str] | None,
        typer.Option(help="analyses:write and/or analyses:read (default both)."),
    ] = None,
) -> None:
    """Create a client and print its API key and webhook secret (shown only once)."""
    from api.keys import SCOPES, create_key

    try:
        issued = create_key(_engine(), name, tuple(scope or SCOPES))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    console.print(f"client   {issued.client.id} ({name}), scopes {' '.join(issued.client.scopes)}")
    console.print(f"api key  {issued.key}")
    console.print(f"webhook  {issued.client.webhook_secret}  (verifies ICH-Signature)")


@keys_app.command("list")
def keys_list() -> None:
    """Every client: key prefix, scopes, created, revoked."""
    from api.keys import list_keys

    table = Table("client", "name", "prefix", "scopes", "created", "revoked")
    columns = ("client_id", "name", "prefix", "scopes", "created", "revoked")
    for row in list_keys(_engine()):
        table.add_row(*(str(row[k] or "") for k in columns))
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="Key prefix (the part after ich_) or client id.")],
) -> None:
    """Revoke a client's key: its requests are refused from now on."""
    from api.keys import revoke_key

    try:
        console.print(f"revoked client {revoke_key(_engine(), key)}")
    except IchError as exc:
        raise _fail(exc) from exc

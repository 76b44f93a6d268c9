"""Data commands: inspect a study, write synthetic studies, convert CT-ICH."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from ich.cli.app import app, console, err_console, fail
from ich.dicom import DicomInputError, SelectionPolicy, inspect, load
from ich.errors import IchError
from ich.schema import InspectionReport, VolumeSummary


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
            raise fail(exc) from exc
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
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "real"


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
            raise fail(exc) from exc
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
            raise fail(exc) from exc
        except OSError as exc:
            raise fail(IchError(f"Writing to {out} failed: {exc}")) from exc
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
            raise fail(exc) from exc
        except OSError as exc:
            raise fail(IchError(f"Writing to {out} failed: {exc}")) from exc
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

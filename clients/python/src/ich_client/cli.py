"""``ich-client``: analyse studies from the command line.

    ich-client analyze STUDY [STUDY ...] --url URL --key KEY [--json | --table]
    ich-client get ANALYSIS_ID --url URL --key KEY [--json | --table]
    ich-client health --url URL

A STUDY is a folder of DICOM files (read recursively), a zip or one DICOM file. ``--url`` and
``--key`` default to ``ICH_URL`` and ``ICH_API_KEY`` (``--token``/``ICH_TOKEN`` for OAuth2).
Exit status: 0 when every study was analysed, 1 when any failed, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from ich_client.client import Analysis, Client
from ich_client.config import DEFAULT_WAIT_S
from ich_client.errors import ICHError
from ich_client.models import AnalysisRecord, Health
from ich_client.progress import ProgressLine


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        client = Client(args.url, api_key=args.key, token=args.token, timeout=args.request_timeout)
    except ValueError as error:  # no URL, or both a key and a token
        print(f"ich-client: {error}", file=sys.stderr)
        return 2
    with client:
        return int(args.run(client, args))


def _analyze(client: Client, args: argparse.Namespace) -> int:
    failed = 0
    for study in args.studies:
        line = ProgressLine(sys.stderr, Path(study).name, _progress_on(args.progress))
        try:
            queued = client.submit(study, progress=line.upload)
            done = queued.wait(args.timeout, outputs=bool(args.outputs), watch=line.watch)
            _save(done, args)
        except (ICHError, ImportError, OSError) as error:
            line.finish(f"failed: {error}")
            if not line.enabled:
                print(f"ich-client: {study}: {error}", file=sys.stderr)
            failed += 1
            continue
        line.finish(f"done    {done.id}")
        _show(done, args.format, sys.stdout, study)
    return 1 if failed else 0


def _get(client: Client, args: argparse.Namespace) -> int:
    try:
        analysis = client.get(args.analysis_id)
    except ICHError as error:
        print(f"ich-client: {error}", file=sys.stderr)
        return 1
    _show(analysis, args.format, sys.stdout, analysis.id)
    return 0


def _viewer(client: Client, args: argparse.Namespace) -> int:
    try:
        link = client.viewer_link(args.analysis_id)
    except ICHError as error:
        print(f"ich-client: {error}", file=sys.stderr)
        return 1
    print(link.model_dump_json() if args.format == "json" else link.url)
    return 0


def _health(client: Client, args: argparse.Namespace) -> int:
    try:
        health = client.health()
    except ICHError as error:
        print(f"ich-client: {error}", file=sys.stderr)
        return 1
    print(health.model_dump_json() if args.format == "json" else _health_text(health))
    return 0 if health.ready else 1


def _health_text(health: Health) -> str:
    parts = ", ".join(f"{name} {'ok' if ok else 'NOT READY'}" for name, ok in health.checks.items())
    return f"{'ready' if health.ready else 'not ready'} ({parts})"


def _save(analysis: Analysis, args: argparse.Namespace) -> None:
    if args.outputs:
        folder = Path(args.outputs)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{analysis.id}-seg.dcm").write_bytes(analysis.seg())
        (folder / f"{analysis.id}-sr.dcm").write_bytes(analysis.sr())
    if args.fhir:
        from ich_client.fhir import to_fhir_bundle

        folder = Path(args.fhir)
        folder.mkdir(parents=True, exist_ok=True)
        bundle = to_fhir_bundle(analysis)
        (folder / f"{analysis.id}.fhir.json").write_text(
            bundle.model_dump_json(exclude_none=True, indent=2)
        )


def _show(analysis: AnalysisRecord, form: str, out: TextIO, label: str) -> None:
    if form == "json":
        out.write(analysis.model_dump_json() + "\n")
    else:
        out.write(table(analysis, label) + "\n")
    out.flush()


def table(analysis: AnalysisRecord, label: str) -> str:
    """The findings as a small text table, most important first."""
    head = f"{label}  analysis {analysis.id}  {analysis.status.value}"
    if analysis.timings is not None:
        head += f" in {analysis.timings.total_s:.1f} s"
    result = analysis.result
    if result is None:
        problem = analysis.problem
        return head + (f"\n  {problem.title}: {problem.detail}" if problem else "")
    flag = "FLAGGED" if result.any_ich_flagged else "not flagged"
    rows = [
        head,
        f"  any ICH  {flag}  probability {result.any_ich_probability:.2f} "
        f"(threshold {result.any_ich_threshold:.2f})",
        f"  {'class':<8} {'flag':<5} {'prob':>5} {'volume mL':>10} {'count':>5}",
    ]
    for c in result.classes:
        rows.append(
            f"  {c.hemorrhage_class.value:<8} {'yes' if c.flagged else 'no':<5} "
            f"{c.probability:5.2f} {c.total_volume_ml:10.2f} {c.count:5d}"
        )
    for h in result.hemorrhages:
        abc2 = f", ABC/2 {h.abc2_ml:.1f} mL" if h.abc2_ml is not None else ""
        rows.append(
            f"  #{h.id} {h.hemorrhage_class.value} {h.volume_ml:.2f} mL ({h.stratum.value}"
            f"{abc2}), {h.slices} slices, score {h.score:.2f}"
        )
    rows += [f"  warning: {w.message}" for w in analysis.warnings]
    return "\n".join(rows)


def _progress_on(choice: str) -> bool:
    return choice == "always" or (choice == "auto" and sys.stderr.isatty())


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("ICH_URL"), help="gateway (ICH_URL)")
    common.add_argument(
        "--key", default=os.environ.get("ICH_API_KEY"), help="API key (ICH_API_KEY)"
    )
    common.add_argument(
        "--token", default=os.environ.get("ICH_TOKEN"), help="OAuth2 token (ICH_TOKEN)"
    )
    common.add_argument(
        "--request-timeout", type=float, default=60.0, help="seconds per HTTP request"
    )
    form = common.add_mutually_exclusive_group()
    form.add_argument("--json", dest="format", action="store_const", const="json")
    form.add_argument("--table", dest="format", action="store_const", const="table")
    common.set_defaults(format="table")

    parser = argparse.ArgumentParser(prog="ich-client", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    analyze = commands.add_parser(
        "analyze", parents=[common], help="analyse studies and print their findings"
    )
    analyze.add_argument("studies", nargs="+", metavar="STUDY", help="folder, zip or DICOM file")
    analyze.add_argument(
        "--timeout", type=float, default=DEFAULT_WAIT_S, help="seconds to wait for each result"
    )
    analyze.add_argument("--outputs", metavar="DIR", help="also save the DICOM SEG and SR here")
    analyze.add_argument("--fhir", metavar="DIR", help="also write FHIR R4 bundles here")
    analyze.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress on stderr (auto: when it is a terminal)",
    )
    analyze.set_defaults(run=_analyze)
    get = commands.add_parser("get", parents=[common], help="print one analysis")
    get.add_argument("analysis_id")
    get.set_defaults(run=_get)
    viewer = commands.add_parser(
        "viewer", parents=[common], help="print a short-lived link to an analysis's viewer"
    )
    viewer.add_argument("analysis_id")
    viewer.set_defaults(run=_viewer)
    commands.add_parser("health", parents=[common], help="is the service ready?").set_defaults(
        run=_health
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())

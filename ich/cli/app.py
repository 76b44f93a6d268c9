"""The `ich` application: its entry point, consoles and how a command fails."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ich import __version__
from ich.errors import IchError

app = typer.Typer(
    name="ich",
    help="Detection and volumetry of acute intracranial hemorrhage on head CT.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(exc: IchError) -> typer.Exit:
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

"""The `ich` command line: one entry point, one module per group of commands."""

from ich.cli import data, model, service  # noqa: F401  (each module registers its commands)
from ich.cli.app import app

__all__ = ["app"]

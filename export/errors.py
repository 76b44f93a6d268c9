"""Export failures a user can act on."""

from __future__ import annotations

from ich.errors import IchError


class ExportError(IchError):
    code = "export-failed"
    title = "Export failed"

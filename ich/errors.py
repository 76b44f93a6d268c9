"""The project's exception base.

Every error a user can cause derives from :class:`IchError` and carries a stable ``code`` (a
slug) and a ``title`` so that the gateway can map it to an RFC 7807 problem+json response
without string matching, and the CLI can print it without a traceback.
"""

from __future__ import annotations

from typing import ClassVar


class IchError(Exception):
    """Base of every error the project raises on purpose."""

    code: ClassVar[str] = "ich-error"
    title: ClassVar[str] = "Analysis error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

"""A one-line progress display on a terminal: bytes uploaded, then the analysis's status and
the time spent waiting. Off when the stream is not a terminal (logs stay clean)."""

from __future__ import annotations

import time
from typing import TextIO

from ich_client.models import AnalysisRecord

WIDTH = 24


class ProgressLine:
    def __init__(self, stream: TextIO, label: str, enabled: bool) -> None:
        self.stream, self.label, self.enabled = stream, label, enabled
        self.started = time.monotonic()
        self.last = 0.0

    def upload(self, sent: int, total: int) -> None:
        """Redraws at most ten times a second, and always at the end."""
        now = time.monotonic()
        if sent < total and now - self.last < 0.1:
            return
        self.last = now
        done = sent / total if total else 1.0
        bar = "#" * round(done * WIDTH)
        self._draw(f"upload  [{bar:<{WIDTH}}] {done:4.0%}  {sent / 1e6:.1f}/{total / 1e6:.1f} MB")

    def watch(self, analysis: AnalysisRecord) -> None:
        elapsed = time.monotonic() - self.started
        self._draw(f"waiting [{analysis.status.value:^{WIDTH}}] {elapsed:5.1f} s")

    def finish(self, summary: str) -> None:
        self._draw(summary)
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, text: str) -> None:
        if self.enabled:
            self.stream.write(f"\r\x1b[2K{self.label}  {text}")
            self.stream.flush()

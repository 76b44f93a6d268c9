"""Where an analysis's files live (its spooled upload, its results) and when they go."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from api.jobs import JobStore
from api.settings import Settings

SWEEP_AGE_S = 3600.0
"""Files without an analysis this old are swept at start even while other replicas run."""


def _last_modified(entry: Path) -> float:
    """The newest modification time in a spool or results folder; infinitely recent when a
    file vanishes meanwhile (its owner is busy with it)."""
    try:
        return max([entry.stat().st_mtime] + [p.stat().st_mtime for p in entry.rglob("*")])
    except OSError:
        return float("inf")


class AnalysisFiles:
    """The spool (what was uploaded, until the DICOM outputs are written) and the results
    folder (label volume, SEG, SR, overlays) of each analysis."""

    def __init__(self, settings: Settings, store: JobStore) -> None:
        self.settings, self.store = settings, store

    def spool(self, analysis_id: str) -> Path:
        return self.settings.spool_dir / analysis_id

    def spooled(self, analysis_id: str) -> list[Path]:
        folder = self.spool(analysis_id)
        return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    def results(self, analysis_id: str) -> Path:
        return self.settings.results_dir / analysis_id

    def sweep(self) -> None:
        """Remove the files no analysis owns. With other replicas alive on the same volume,
        only files older than SWEEP_AGE_S go: a younger one may be an upload another replica
        is still receiving."""
        others = self.store.others_alive(self.settings.lease_s)
        oldest = time.time() - SWEEP_AGE_S
        for folder in (self.settings.spool_dir, self.settings.results_dir):
            for entry in folder.iterdir():
                if self.store.get(entry.name) is None and (
                    not others or _last_modified(entry) < oldest
                ):
                    shutil.rmtree(entry, ignore_errors=True)  # stow-* staging included

    def remove(self, analysis_id: str) -> None:
        shutil.rmtree(self.spool(analysis_id), ignore_errors=True)
        shutil.rmtree(self.results(analysis_id), ignore_errors=True)

    def lost(self, analysis_id: str) -> None:
        """A write was refused: when the analysis was deleted meanwhile, leave nothing of it
        behind; when another replica took it over, its files are that replica's now."""
        if self.store.get(analysis_id) is None:
            self.remove(analysis_id)

    def retire_spool(self, analysis_id: str) -> None:
        if not self.settings.keep_spool:
            shutil.rmtree(self.spool(analysis_id), ignore_errors=True)

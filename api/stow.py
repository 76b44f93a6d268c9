"""DICOMweb STOW-RS intake: instances arrive in any number of requests; a study's analysis
is queued once no instance of it has arrived for ``stow_quiet_s`` seconds.

Each (client, study) gets an analysis in status ``receiving`` when its first instance lands, so
the store response can already point at it; a restart queues whatever was still receiving.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from api.jobs import JobStore
from api.models import Status
from api.settings import Settings
from api.worker import Workers
from ich.logs import uid_digest

log = logging.getLogger("api.stow")


@dataclass(frozen=True)
class Stored:
    sop_class_uid: str
    sop_instance_uid: str
    analysis_id: str


@dataclass(frozen=True)
class Refused:
    sop_class_uid: str
    sop_instance_uid: str
    reason: int
    """DICOM failure reason: 0xC000 cannot understand, 0xA700 out of resources."""


@dataclass
class Assembler:
    settings: Settings
    store: JobStore
    workers: Workers
    open: dict[tuple[str, str], str] = field(default_factory=dict)
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def start(self) -> None:
        for analysis_id in self.store.unfinished(Status.RECEIVING):
            self._complete(analysis_id)

    async def stop(self) -> None:
        for timer in self.timers.values():
            timer.cancel()

    async def add(self, client_id: str, files: list[Path]) -> list[Stored | Refused]:
        """File each instance under its study's receiving analysis (created if needed)."""
        outcomes: list[Stored | Refused] = []
        async with self.lock:
            for path in files:
                try:
                    header = pydicom.dcmread(path, stop_before_pixels=True)
                    study = str(header.StudyInstanceUID)
                    sop_class, sop = str(header.SOPClassUID), str(header.SOPInstanceUID)
                except Exception:  # anything unreadable is refused, the rest is kept
                    outcomes.append(Refused("", "", 0xC000))
                    path.unlink(missing_ok=True)
                    continue
                analysis_id = self._analysis(client_id, study)
                target = self.workers.spool(analysis_id)
                target.mkdir(parents=True, exist_ok=True)
                shutil.move(path, target / f"{uid_digest(sop)}.dcm")
                outcomes.append(Stored(sop_class, sop, analysis_id))
                self._touch(analysis_id)
        return outcomes

    def _analysis(self, client_id: str, study: str) -> str:
        key = (client_id, study)
        if key not in self.open:
            self.workers.admit()
            row, _ = self.store.create(client_id, "stow", Status.RECEIVING)
            self.open[key] = row.id
            log.info("study %s receiving as analysis %s", uid_digest(study), row.id)
        return self.open[key]

    def _touch(self, analysis_id: str) -> None:
        if analysis_id in self.timers:
            self.timers[analysis_id].cancel()
        loop = asyncio.get_running_loop()
        self.timers[analysis_id] = loop.call_later(
            self.settings.stow_quiet_s, self._complete, analysis_id
        )

    def _complete(self, analysis_id: str) -> None:
        """The quiet period passed: queue the analysis."""
        self.timers.pop(analysis_id, None)
        self.open = {k: v for k, v in self.open.items() if v != analysis_id}
        self.store.update(analysis_id, status=Status.QUEUED.value)
        self.workers.submit(analysis_id)

"""Study assembly for instances that arrive one by one, over DICOMweb STOW-RS or DICOM C-STORE:
a study's analysis is queued once no instance of it has arrived for a quiet period
(``stow_quiet_s``, ``dicom_quiet_s``) and no store request of its client is still streaming.

Each (client, study) gets an analysis in status ``receiving`` when its first instance lands, so
the store response can already point at it; a restart queues whatever was still receiving.
Studies are assembled in the memory of the replica that receives them, so the instances of one
study must reach one replica (on Kubernetes the DICOMweb Service keeps each sender on one pod).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from api.jobs import JobStore
from api.schemas import Status
from api.settings import Settings
from api.worker import Workers
from ich.logs import uid_digest

log = logging.getLogger("api.stow")
CANNOT_UNDERSTAND, OUT_OF_RESOURCES = 0xC000, 0xA700
"""DICOM failure reasons of a refused instance (PS3.4 C.4.2.1.4 status codes)."""


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


@dataclass
class _Open:
    analysis_id: str
    client_id: str
    instances: int = 0


def _identify(path: Path) -> tuple[str, str, str] | None:
    """(study, SOP class, SOP instance) UIDs of a stored part, or None if it is not DICOM."""
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        return str(header.StudyInstanceUID), str(header.SOPClassUID), str(header.SOPInstanceUID)
    except Exception:  # anything unreadable is refused, the rest is kept
        return None


@dataclass
class Assembler:
    settings: Settings
    store: JobStore
    workers: Workers
    source: str = "stow"
    """How the analyses it makes arrived: ``stow`` (DICOMweb) or ``dimse`` (C-STORE)."""
    quiet_s: float | None = None
    """Quiet period; ``stow_quiet_s`` unless given."""
    studies: dict[tuple[str, str], _Open] = field(default_factory=dict)
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    streaming: Counter[str] = field(default_factory=Counter)
    """Store requests in flight per client: their studies may not be complete yet."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    queuing: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    """Analyses whose quiet period passed, being marked queued off the event loop."""

    def resume(self, analysis_id: str) -> None:
        """A receiving analysis left by a restart or a stopped replica: queued after the
        quiet period, as if its last instance had just arrived."""
        self._arm(analysis_id)

    async def stop(self) -> None:
        """Cancel the timers and the queuing under way: an analysis not yet queued stays
        receiving and one not yet submitted stays queued, and either is resumed after the
        restart (or by another replica)."""
        for timer in self.timers.values():
            timer.cancel()
        pending = list(self.queuing.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def begin(self, client_id: str) -> None:
        self.streaming[client_id] += 1

    def end(self, client_id: str) -> None:
        self.streaming[client_id] -= 1

    def forget(self, analysis_id: str) -> None:
        """A deleted analysis takes no more instances, and is not queued."""
        if analysis_id in self.timers:
            self.timers.pop(analysis_id).cancel()
        if analysis_id in self.queuing:
            self.queuing.pop(analysis_id).cancel()
        self.studies = {k: v for k, v in self.studies.items() if v.analysis_id != analysis_id}

    async def add(self, client_id: str, files: list[Path]) -> list[Stored | Refused]:
        """File each instance under its study's receiving analysis (created if needed)."""
        found = await asyncio.to_thread(lambda: [_identify(p) for p in files])
        outcomes: list[Stored | Refused] = []
        async with self.lock:
            for path, identity in zip(files, found, strict=True):
                if identity is None:
                    outcomes.append(Refused("", "", CANNOT_UNDERSTAND))
                    continue
                study, sop_class, sop = identity
                current = await self._open(client_id, study)
                if current.instances >= self.settings.max_files:
                    outcomes.append(Refused(sop_class, sop, OUT_OF_RESOURCES))
                    continue
                target = self.workers.files.spool(current.analysis_id)
                target.mkdir(parents=True, exist_ok=True)
                shutil.move(path, target / f"{uid_digest(sop)}.dcm")
                current.instances += 1
                outcomes.append(Stored(sop_class, sop, current.analysis_id))
                self._arm(current.analysis_id)
        return outcomes

    async def _open(self, client_id: str, study: str) -> _Open:
        key = (client_id, study)
        if key not in self.studies:  # the database is asked off the loop, the lock still held
            await asyncio.to_thread(self.workers.admit)
            row, _ = await asyncio.to_thread(
                self.store.create, client_id, self.source, Status.RECEIVING
            )
            self.studies[key] = _Open(row.id, client_id)
            log.info("study %s receiving as analysis %s", uid_digest(study), row.id)
        return self.studies[key]

    def _arm(self, analysis_id: str) -> None:
        if analysis_id in self.timers:
            self.timers[analysis_id].cancel()
        loop = asyncio.get_running_loop()
        self.timers[analysis_id] = loop.call_later(
            self.settings.stow_quiet_s if self.quiet_s is None else self.quiet_s,
            self._complete,
            analysis_id,
        )

    def _complete(self, analysis_id: str) -> None:
        """The quiet period passed: queue the analysis in a task, since that writes to the
        database, which must not hold up the event loop (nor this timer callback)."""
        self.timers.pop(analysis_id, None)
        if analysis_id not in self.queuing:
            loop = asyncio.get_running_loop()
            self.queuing[analysis_id] = loop.create_task(self._queue(analysis_id))

    async def _queue(self, analysis_id: str) -> None:
        """Mark the analysis queued (in a thread) and submit it, under the lock so that no
        instance is filed meanwhile; wait again while its client still streams or when the
        database does not answer."""
        try:
            async with self.lock:
                if analysis_id in self.timers:  # an instance arrived meanwhile: wait again
                    return
                owner = next(
                    (v for v in self.studies.values() if v.analysis_id == analysis_id), None
                )
                if owner is not None and self.streaming[owner.client_id] > 0:
                    self._arm(analysis_id)
                    return
                try:
                    exists = await asyncio.to_thread(
                        self.store.update, analysis_id, status=Status.QUEUED.value
                    )
                except Exception:
                    log.exception("could not queue received analysis %s; retrying", analysis_id)
                    self._arm(analysis_id)
                    return
                del self.queuing[analysis_id]  # done: forget() must not cancel this task
                self.forget(analysis_id)
                if exists:
                    self.workers.submit(analysis_id)
        finally:
            self.queuing.pop(analysis_id, None)

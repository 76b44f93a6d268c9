"""This gateway among its replicas: a heartbeat, and the take-over of stopped replicas' work.

Replicas share the database and the data volume. Each analysis has an owner; only the owner
runs it. Every third of ``ICH_LEASE_S`` a replica records its heartbeat and takes over the
unfinished analyses, pending DICOM objects and webhooks of replicas whose heartbeat is older
than the lease (a crashed or removed pod), one taker per analysis. A replica stopping cleanly
removes its heartbeat, so its work moves at once; one restarting under the same id (a single
host, a restarted container of the same pod) resumes its own work without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from sqlalchemy import Row

from api.jobs import JobStore
from api.schemas import Status
from api.settings import Settings
from api.stow import Assembler
from api.worker import Workers

log = logging.getLogger("api.replicas")


@dataclass
class Replica:
    settings: Settings
    store: JobStore
    workers: Workers
    assemblers: dict[str, Assembler]
    """By source: where a receiving analysis left by a restart is completed."""
    task: asyncio.Task[None] | None = field(default=None)

    async def start(self) -> None:
        """Announce this replica and resume its own and any orphaned work."""
        self.store.heartbeat(self.settings.lease_s)
        self._run(self.store.take_over(self.settings.lease_s, own=True), "resumed")
        self.task = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        """No more heartbeats or take-overs (first, before the workers stop)."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def retire(self) -> None:
        """Last: hand what is left to the other replicas at their next beat. A write of a
        worker still finishing here afterwards is refused (the job store checks owners)."""
        with contextlib.suppress(Exception):  # a database that is gone: the lease expires
            self.store.retire()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_s / 3)
            try:
                await asyncio.to_thread(self.store.heartbeat, self.settings.lease_s)
                taken = await asyncio.to_thread(self.store.take_over, self.settings.lease_s, False)
            except Exception:  # the database is away: try again at the next beat
                log.exception("heartbeat of replica failed")
                continue
            self._run(taken, "took over")

    def _run(self, rows: list[Row], verb: str) -> None:
        for row in rows:
            if row.status == Status.RECEIVING.value:
                self.assemblers.get(row.source, self.assemblers["stow"]).resume(row.id)
            else:
                self.workers.resume(row)
        if rows:
            log.info("%s %d analyses", verb, len(rows))

"""A bounded pool of analysis workers: queue, run through Triton, publish.

An analysis is queued in the database before the client hears "accepted", so a restart finds
every accepted job (``api.replicas`` hands them back, or to another replica). A worker scans
headers and selects the series (gateway), sends that series to Triton (pixels), stores the
result and wakes any waiting request; what the analysis then owes (notice, DICOM outputs,
webhook, C-STORE back) runs off the request's path (``api.follow_ups``). An unreachable or
slow Triton is retried a few times before the analysis fails with that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import AsyncIterator, Coroutine
from enum import Enum
from typing import Any

import numpy as np
from sqlalchemy import Row

from api.db import unavailable
from api.files import AnalysisFiles
from api.follow_ups import FollowUps
from api.inference import Inference
from api.intake import select_series
from api.jobs import PENDING, JobStore, follow_ups_due, now, utc
from api.metrics import Metrics
from api.outputs import LABEL_FILE
from api.problems import ProblemError, of_error, problem
from api.schemas import Outputs, Status
from api.settings import Settings
from ich.errors import IchError
from ich.logs import uid_digest
from ich.schema import ExamResult

log = logging.getLogger("api.worker")
TRANSIENT = frozenset({"triton-unavailable", "analysis-timeout"})
MAX_ATTEMPTS = 3
"""Tries of one analysis (transient Triton failures, restarts in the middle) before it fails."""
WAIT_POLL_S = 1.0
"""How often a synchronous request rereads an analysis another replica runs."""


class Outcome(Enum):
    FINISHED = "finished"
    RETRY = "retry"
    GONE = "gone"
    """Deleted, or finished by an earlier attempt."""


class Workers:
    def __init__(
        self, settings: Settings, store: JobStore, inference: Inference, metrics: Metrics
    ) -> None:
        self.settings, self.store, self.inference = settings, store, inference
        self.metrics = metrics
        self.files = AnalysisFiles(settings, store)
        self.follow_ups = FollowUps(settings, store, self.files, metrics)
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.finished: dict[str, asyncio.Event] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.background: set[asyncio.Task[None]] = set()
        self.uploading = 0

    async def start(self) -> None:
        """Sweep the files no analysis owns, then start the workers."""
        self.files.sweep()
        self.tasks = [asyncio.create_task(self._work()) for _ in range(self.settings.workers)]

    def resume(self, row: Row) -> None:
        """Run an accepted analysis this replica now owns (after a restart or a take-over)."""
        if row.status in (Status.QUEUED.value, Status.RUNNING.value):
            self.queue.put_nowait(row.id)
        else:
            self._spawn(self.follow_ups.run(row.id))

    async def stop(self) -> None:
        for task in [*self.tasks, *self.background]:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.background, return_exceptions=True)

    def admit(self, active: int | None = None) -> None:
        """Raises ProblemError queue-full (503, Retry-After) when the queue is at its limit
        (uploads still streaming count: each holds a place, see :meth:`place`), and
        storage-full when the spool has less than ``min_free_bytes`` free. ``active``: the
        unfinished analyses, when the caller has just counted them."""
        free = shutil.disk_usage(self.settings.spool_dir).free
        if free < self.settings.min_free_bytes:
            log.warning("refused an upload: %d bytes free on the spool", free)
            raise ProblemError(
                "storage-full",
                f"The gateway's spool has {free:,} bytes free (it keeps "
                f"{self.settings.min_free_bytes:,}); nothing was accepted. Retry in "
                f"{self.settings.retry_after_s} s.",
                "Storage full",
            )
        depth = (self.store.active() if active is None else active) + self.uploading
        if depth >= self.settings.queue_limit:
            raise ProblemError(
                "queue-full",
                f"{depth} analyses are waiting (limit {self.settings.queue_limit}); retry in "
                f"{self.settings.retry_after_s} s.",
                "Service at capacity",
            )

    @contextlib.asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        """Hold a place in the queue while an upload streams, so that concurrent uploads
        cannot together exceed the limit ``admit`` checked (counted off the event loop, then
        checked and taken on it)."""
        self.admit(await asyncio.to_thread(self.store.active))
        self.uploading += 1
        try:
            yield
        finally:
            self.uploading -= 1

    def submit(self, analysis_id: str) -> None:
        self.finished.setdefault(analysis_id, asyncio.Event())
        self.queue.put_nowait(analysis_id)

    async def wait(self, analysis_id: str, timeout_s: float) -> bool:
        """True once the analysis is done, failed or gone; False after ``timeout_s``. This
        replica's own analyses wake the waiter; another replica's (an idempotent retry that
        landed here) are looked up each second."""
        event = self.finished.setdefault(analysis_id, asyncio.Event())
        deadline = time.monotonic() + timeout_s
        while True:
            row = await asyncio.to_thread(self.store.get, analysis_id)
            if row is None or row.status in (Status.DONE.value, Status.FAILED.value):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            mine = row.owner == self.store.replica  # then its worker sets the event
            try:
                await asyncio.wait_for(
                    event.wait(), remaining if mine else min(remaining, WAIT_POLL_S)
                )
            except TimeoutError:
                continue
            return True

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            analysis_id = await self.queue.get()
            self.metrics.busy.inc()
            try:
                outcome = await asyncio.to_thread(self._analyse, analysis_id)
            except Exception as error:
                if unavailable(error):  # locked or unreachable: try again when it is back
                    log.warning("analysis %s waits for the database: %s", analysis_id, error)
                    outcome = Outcome.RETRY
                else:  # the analysis stays for a restart
                    log.exception("worker could not record analysis %s", analysis_id)
                    outcome = Outcome.GONE
            finally:
                self.metrics.busy.dec()
            if outcome is Outcome.RETRY:
                delay = self.settings.retry_after_s
                loop.call_later(delay, self.queue.put_nowait, analysis_id)
                continue
            if outcome is Outcome.FINISHED:
                self._spawn(self.follow_ups.run(analysis_id))
            event = self.finished.pop(analysis_id, None)
            if event is not None:
                event.set()

    def _analyse(self, analysis_id: str) -> Outcome:
        """Run one analysis to done or failed (or back to the queue after a transient
        failure)."""
        row = self.store.claim(analysis_id)
        if row is None:
            return self._unclaimed(analysis_id)
        started = time.perf_counter()
        if row.attempts > MAX_ATTEMPTS:
            detail = (
                f"Gave up after {MAX_ATTEMPTS} attempts, each interrupted (a restart, or the "
                "database going away mid-analysis)."
            )
            return self._fail(row, problem("analysis-failed", "Analysis failed", detail), started)
        queued_s = max((now() - utc(row.created)).total_seconds(), 0.0)
        try:
            intake = select_series(self.files.spooled(analysis_id), self.settings)
            selected = time.perf_counter()
            result, label = self.inference.analyze(intake.files)
            inferred = time.perf_counter()
            model = self.inference.model
        except IchError as error:
            # An unreachable Triton costs no attempt while the analysis is young enough:
            # restarts and rollouts of the inference server must not fail the queue.
            waiting = error.code == "triton-unavailable" and (
                queued_s < self.settings.analysis_timeout_s
            )
            if error.code in TRANSIENT and (waiting or row.attempts < MAX_ATTEMPTS):
                log.warning("analysis %s: %s, retrying", analysis_id, error.code)
                attempts = row.attempts - 1 if waiting else row.attempts
                self.store.update(analysis_id, status=Status.QUEUED.value, attempts=attempts)
                return Outcome.RETRY
            return self._fail(row, of_error(error), started)
        except Exception:
            log.exception("analysis %s failed unexpectedly", analysis_id)
            detail = "The analysis failed on the server; the error is logged with its id."
            return self._fail(row, problem("analysis-failed", "Analysis failed", detail), started)
        codes = {w.code for w in result.warnings}
        extra = [w for w in intake.warnings if w.code not in codes]
        result = result.model_copy(update={"warnings": [*extra, *result.warnings]})
        out = self.files.results(analysis_id)
        out.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out / LABEL_FILE, label=label)
        timings = {
            "queued_s": round(queued_s, 4),
            "selection_s": round(selected - started, 4),
            "inference_s": round(inferred - selected, 4),
            "total_s": round(queued_s + inferred - started, 4),
        }
        notify = bool(self.settings.positive_webhook_url) and result.any_ich_flagged
        recorded = self.store.finish(
            analysis_id,
            status=Status.DONE.value,
            result=result.model_dump_json(),
            model=model.model_dump(),
            timings=timings,
            study_digest=uid_digest(result.study_uid),
            outputs=Outputs.PENDING.value,
            webhook="pending" if row.callback_url else "none",
            notified=PENDING if notify else None,
            returned=PENDING if self.settings.dicom_destination and row.source == "dimse" else None,
        )
        if not recorded:  # deleted (or taken over) while it ran
            self.files.lost(analysis_id)
            return Outcome.GONE
        self._count(result, timings)
        log.info(
            "analysis %s done: study %s, any_ich %s, %.2f s",
            analysis_id,
            uid_digest(result.study_uid),
            result.any_ich_flagged,
            timings["total_s"],
        )
        return Outcome.FINISHED

    def _unclaimed(self, analysis_id: str) -> Outcome:
        """Not runnable: gone, another replica's, or finished by a former owner just before
        this replica took it over (then its DICOM objects or webhook may still be due)."""
        row = self.store.get(analysis_id)
        mine = row is not None and row.owner == self.store.replica
        return Outcome.FINISHED if mine and follow_ups_due(row) else Outcome.GONE

    def _count(self, result: ExamResult, timings: dict[str, float]) -> None:
        self.metrics.analyses.labels("done").inc()
        self.metrics.analysis_seconds.labels("total").observe(timings["total_s"])
        self.metrics.analysis_seconds.labels("inference").observe(timings["inference_s"])
        for finding in result.classes:
            if finding.flagged:
                self.metrics.flagged.labels(finding.hemorrhage_class.value).inc()
        if result.any_ich_flagged:
            self.metrics.flagged.labels("any").inc()

    def _fail(self, row: Row, document: dict[str, object], started: float) -> Outcome:
        code = str(document["type"]).rsplit("/", 1)[-1]
        recorded = self.store.finish(
            row.id,
            status=Status.FAILED.value,
            problem=document,
            webhook="pending" if row.callback_url else "none",
        )
        if not recorded:
            self.files.lost(row.id)
            return Outcome.GONE
        self.metrics.analyses.labels(code).inc()
        log.info("analysis %s failed: %s after %.2f s", row.id, code, time.perf_counter() - started)
        self.files.retire_spool(row.id)
        return Outcome.FINISHED

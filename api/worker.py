"""A bounded pool of analysis workers: queue, run through Triton, publish, then follow up.

An analysis is queued in the database before the client hears "accepted", so a restart finds
every accepted job (:meth:`Workers.start` re-queues them). A worker scans headers and selects
the series (gateway), sends that series to Triton (pixels), stores the result and wakes any
waiting request. The DICOM SEG, SR and overlays and the webhook follow, off the request's path.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from api.inference import Inference
from api.intake import select_series
from api.jobs import JobStore, as_analysis, now
from api.keys import client_secret
from api.metrics import Metrics
from api.models import Outputs, Status
from api.outputs import write_outputs
from api.problems import ProblemError, of_error, problem
from api.settings import Settings
from api.webhooks import deliver
from ich.errors import IchError
from ich.logs import uid_digest

log = logging.getLogger("api.worker")
LABEL_FILE = "label.npz"


class Workers:
    def __init__(
        self, settings: Settings, store: JobStore, inference: Inference, metrics: Metrics
    ) -> None:
        self.settings, self.store, self.inference, self.metrics = (
            settings,
            store,
            inference,
            metrics,
        )
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.finished: dict[str, asyncio.Event] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.background: set[asyncio.Task[None]] = set()

    def spool(self, analysis_id: str) -> Path:
        return self.settings.spool_dir / analysis_id

    def results(self, analysis_id: str) -> Path:
        return self.settings.results_dir / analysis_id

    async def start(self) -> None:
        """Start the workers and resume what a previous run accepted and did not finish."""
        resumed = self.store.unfinished(Status.QUEUED, Status.RUNNING)
        for analysis_id in resumed:
            self.queue.put_nowait(analysis_id)
        for analysis_id in self.store.outputs_pending():
            self._spawn(self._follow_up(analysis_id, notify=False))
        self.metrics.queue_depth.set(len(resumed))
        if resumed:
            log.info("resumed %d accepted analyses", len(resumed))
        self.tasks = [asyncio.create_task(self._work()) for _ in range(self.settings.workers)]

    async def stop(self) -> None:
        for task in [*self.tasks, *self.background]:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.background, return_exceptions=True)

    def admit(self) -> None:
        """Raises ProblemError queue-full (503, Retry-After) when the queue is at its limit."""
        depth = self.store.active()
        if depth >= self.settings.queue_limit:
            raise ProblemError(
                "queue-full",
                f"{depth} analyses are waiting (limit {self.settings.queue_limit}); retry in "
                f"{self.settings.retry_after_s} s.",
                "Service at capacity",
            )

    def submit(self, analysis_id: str) -> None:
        self.finished.setdefault(analysis_id, asyncio.Event())
        self.queue.put_nowait(analysis_id)
        self.metrics.queue_depth.inc()

    async def wait(self, analysis_id: str, timeout_s: float) -> bool:
        """True once the analysis is done or failed, False after ``timeout_s``."""
        event = self.finished.setdefault(analysis_id, asyncio.Event())
        row = self.store.get(analysis_id)
        if row is None or row.status in (Status.DONE.value, Status.FAILED.value):
            return True
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def _spawn(self, coroutine: object) -> None:
        task = asyncio.create_task(coroutine)  # type: ignore[arg-type]
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _work(self) -> None:
        while True:
            analysis_id = await self.queue.get()
            self.metrics.busy.inc()
            try:
                finished = await asyncio.to_thread(self._analyse, analysis_id)
            finally:
                self.metrics.busy.dec()
                self.metrics.queue_depth.dec()
            if finished:
                self._spawn(self._follow_up(analysis_id, notify=True))
            event = self.finished.pop(analysis_id, None)
            if event is not None:
                event.set()

    def _analyse(self, analysis_id: str) -> bool:
        """Run one analysis to done or failed; False if it was gone (deleted, finished)."""
        row = self.store.claim(analysis_id)
        if row is None:
            return False
        started = time.perf_counter()
        queued_s = (now() - row.created.replace(tzinfo=now().tzinfo)).total_seconds()
        try:
            files = sorted(p for p in self.spool(analysis_id).iterdir() if p.is_file())
            intake = select_series(files, self.settings)
            selected = time.perf_counter()
            result, label = self.inference.analyze(intake.files)
            inferred = time.perf_counter()
            codes = {w.code for w in result.warnings}
            extra = [w for w in intake.warnings if w.code not in codes]
            result = result.model_copy(update={"warnings": [*extra, *result.warnings]})
            out = self.results(analysis_id)
            out.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(out / LABEL_FILE, label=label)
            model = self.inference.model
        except IchError as error:
            return self._fail(analysis_id, of_error(error), started)
        except Exception:
            log.exception("analysis %s failed unexpectedly", analysis_id)
            return self._fail(
                analysis_id,
                problem(
                    "analysis-failed",
                    "Analysis failed",
                    "The analysis failed on the server; the error is logged with this analysis id.",
                ),
                started,
            )
        timings = {
            "queued_s": round(max(queued_s, 0.0), 4),
            "selection_s": round(selected - started, 4),
            "inference_s": round(inferred - selected, 4),
            "total_s": round(max(queued_s, 0.0) + inferred - started, 4),
        }
        self.store.update(
            analysis_id,
            status=Status.DONE.value,
            finished=now(),
            result=result.model_dump_json(),
            model=model.model_dump(),
            timings=timings,
            study_digest=uid_digest(result.study_uid),
            outputs=Outputs.PENDING.value,
            problem=None,
        )
        self.metrics.analyses.labels("done").inc()
        self.metrics.analysis_seconds.labels("total").observe(timings["total_s"])
        self.metrics.analysis_seconds.labels("inference").observe(timings["inference_s"])
        for finding in result.classes:
            if finding.flagged:
                self.metrics.flagged.labels(finding.hemorrhage_class.value).inc()
        if result.any_ich_flagged:
            self.metrics.flagged.labels("any").inc()
        log.info(
            "analysis %s done: study %s, any_ich %s, %.2f s",
            analysis_id,
            uid_digest(result.study_uid),
            result.any_ich_flagged,
            timings["total_s"],
        )
        return True

    def _fail(self, analysis_id: str, document: dict[str, object], started: float) -> bool:
        code = str(document["type"]).rsplit("/", 1)[-1]
        self.store.update(analysis_id, status=Status.FAILED.value, finished=now(), problem=document)
        self.metrics.analyses.labels(code).inc()
        log.info(
            "analysis %s failed: %s after %.2f s", analysis_id, code, time.perf_counter() - started
        )
        self._retire_spool(analysis_id)
        return True

    def _retire_spool(self, analysis_id: str) -> None:
        if self.settings.keep_spool:
            self.store.update(analysis_id, spool_kept=True)
        else:
            shutil.rmtree(self.spool(analysis_id), ignore_errors=True)

    async def _follow_up(self, analysis_id: str, notify: bool) -> None:
        """DICOM SEG, SR and overlays (done analyses), then the webhook."""
        row = self.store.get(analysis_id)
        if row is None:
            return
        if row.status == Status.DONE.value and row.outputs == Outputs.PENDING.value:
            await asyncio.to_thread(self._outputs, analysis_id)
        row = self.store.get(analysis_id)
        if notify and row is not None and row.callback_url:
            await self._webhook(row)

    def _outputs(self, analysis_id: str) -> None:
        row = self.store.get(analysis_id)
        if row is None:
            return
        state = Outputs.READY
        try:
            files = sorted(p for p in self.spool(analysis_id).iterdir() if p.is_file())
            write_outputs(files, self.results(analysis_id), as_analysis(row), self.settings)
        except Exception:
            log.exception("DICOM outputs of analysis %s failed", analysis_id)
            state = Outputs.FAILED
        self.store.update(analysis_id, outputs=state.value)
        self._retire_spool(analysis_id)

    async def _webhook(self, row: object) -> None:
        analysis = as_analysis(row)  # type: ignore[arg-type]
        event = f"analysis.{analysis.status.value}"
        body = analysis.model_dump_json(exclude={"result": {"label_volume"}}).encode()
        secret = client_secret(self.store.engine, row.client_id)  # type: ignore[attr-defined]
        delivered = await deliver(
            row.callback_url,
            secret,
            event,
            body,  # type: ignore[attr-defined]
            self.settings.webhook_attempts,
            self.settings.webhook_backoff_s,
            self.settings.webhook_timeout_s,
        )
        outcome = "delivered" if delivered else "failed"
        self.metrics.webhooks.labels(outcome).inc()
        self.store.update(analysis.id, webhook=outcome)
        self.store.audit(row.client_id, f"webhook-{outcome}", analysis.id)  # type: ignore[attr-defined]

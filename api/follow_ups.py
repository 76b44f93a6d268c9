"""What a finished analysis owes, off the request's path: the positive-study notice, its DICOM
SEG, SR and overlays, the client's webhook, and the SEG and SR sent back over DICOM.

Each step records itself in the database when done, so one interrupted by a restart or by the
database going away is taken up again where it stopped (``api.replicas`` resumes them).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Row

from api.db import unavailable
from api.files import AnalysisFiles
from api.jobs import PENDING, JobStore, as_analysis
from api.keys import client_secret
from api.metrics import Metrics
from api.outputs import SEG_FILE, SR_FILE, write_outputs
from api.problems import ProblemError
from api.schemas import Outputs
from api.sender import DeliveryError, send_objects
from api.settings import Settings
from api.webhooks import check_callback, deliver, positive_notice

log = logging.getLogger("api.follow_ups")


class FollowUps:
    def __init__(
        self, settings: Settings, store: JobStore, files: AnalysisFiles, metrics: Metrics
    ) -> None:
        self.settings, self.store, self.files, self.metrics = settings, store, files, metrics

    async def run(self, analysis_id: str) -> None:
        """Every pending step of the analysis, in order: the notice first (it is the triage
        signal), then the DICOM outputs, the webhook and the C-STORE back. While the
        database is away, waits and tries again."""
        while True:
            try:
                await self._once(analysis_id)
                return
            except Exception as error:
                if not unavailable(error):
                    raise
                log.warning("follow-up of %s waits for the database: %s", analysis_id, error)
                await asyncio.sleep(self.settings.retry_after_s)

    async def _once(self, analysis_id: str) -> None:
        store = self.store
        row = await asyncio.to_thread(store.get, analysis_id)
        if row is not None and row.notified == PENDING:
            delivered = await self._deliver(
                row,
                self.settings.positive_webhook_url,
                "analysis.positive",
                positive_notice(as_analysis(row)),
                self.settings.positive_webhook_secret or "",
            )
            notified = "delivered" if delivered else "failed"
            await asyncio.to_thread(store.update, row.id, notified=notified)
        if row is not None and row.outputs == Outputs.PENDING.value:
            await asyncio.to_thread(self._outputs, row)
            row = await asyncio.to_thread(store.get, analysis_id)
        if row is not None and row.webhook == PENDING:
            secret = await asyncio.to_thread(client_secret, store.engine, row.client_id)
            delivered = await self._deliver(
                row,
                row.callback_url,
                f"analysis.{row.status}",
                as_analysis(row).model_dump_json().encode(),
                secret,
            )
            webhook = "delivered" if delivered else "failed"
            await asyncio.to_thread(store.update, row.id, webhook=webhook)
        if row is not None and row.returned == PENDING:
            sent = await asyncio.to_thread(self._return, row)
            await asyncio.to_thread(store.update, row.id, returned="sent" if sent else "failed")

    def _outputs(self, row: Row) -> None:
        state = Outputs.READY
        try:
            write_outputs(
                self.files.spooled(row.id), self.files.results(row.id), as_analysis(row),
                self.settings,
            )  # fmt: skip
        except Exception:
            log.exception("DICOM outputs of analysis %s failed", row.id)
            state = Outputs.FAILED
        if not self.store.update(row.id, outputs=state.value):
            self.files.lost(row.id)
            return
        self.files.retire_spool(row.id)

    async def _deliver(
        self, row: Row, url: str | None, event: str, body: bytes, secret: str
    ) -> bool:
        """POST ``body`` signed with ``secret``, with retries; False when it could not be
        delivered (or the URL was refused). Counted and audited either way."""
        try:
            check_callback(url or "", self.settings.webhook_allow_loopback)
            delivered = await deliver(
                url or "",
                secret,
                event,
                body,
                self.settings.webhook_attempts,
                self.settings.webhook_backoff_s,
                self.settings.webhook_timeout_s,
            )
        except ProblemError as refused:
            log.warning("%s of analysis %s refused: %s", event, row.id, refused.message)
            delivered = False
        outcome = "delivered" if delivered else "failed"
        self.metrics.webhooks.labels(outcome).inc()
        await asyncio.to_thread(
            self.store.audit, row.client_id, f"webhook-{outcome}", row.id, event
        )
        return delivered

    def _return(self, row: Row) -> bool:
        """C-STORE the SEG and SR to the DICOM destination; False when it refused."""
        folder = self.files.results(row.id)
        try:
            send_objects(
                [folder / SEG_FILE, folder / SR_FILE],
                self.settings.dicom_destination or "",
                self.settings.dicom_ae_title,
            )
        except (DeliveryError, OSError) as error:
            log.warning("SEG/SR of analysis %s not sent back: %s", row.id, error)
            return False
        return True

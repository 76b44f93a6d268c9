"""DICOMweb pull: poll a QIDO-RS server for new head CT studies and fetch them by WADO-RS into
jobs of the job store, for sites whose PACS answers queries rather than pushing.

Every ``dicomweb_poll_s`` the puller searches CT studies dated within
``dicomweb_lookback_days``; a study whose description, or a series' description or body part,
matches ``dicomweb_head_pattern`` is claimed in the ``pulled`` table (once, across restarts and
replicas), its CT series are streamed instance by instance into a spool folder (never a whole
series in memory), and it is queued as an analysis owned by ``dicom_client``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from dicomweb_client.api import DICOMwebClient
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from api.db import pulled
from api.jobs import JobStore, now
from api.models import Status
from api.problems import ProblemError
from api.settings import Settings
from api.worker import Workers
from ich.logs import uid_digest

log = logging.getLogger("api.puller")
STUDY_UID, SERIES_UID = "0020000D", "0020000E"
DESCRIPTIONS = ("00081030", "0008103E", "00180015")
"""Study description, series description, body part examined."""


def _value(item: dict[str, Any], tag: str) -> str:
    values = item.get(tag, {}).get("Value") or [""]
    return str(values[0])


@dataclass
class Puller:
    settings: Settings
    store: JobStore
    workers: Workers
    client_id: str
    task: asyncio.Task[None] | None = field(default=None)

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                for analysis_id in await asyncio.to_thread(self.poll):
                    self.workers.submit(analysis_id)
            except Exception:  # the server is away or answered nonsense: try at the next poll
                log.exception("DICOMweb poll failed")
            await asyncio.sleep(self.settings.dicomweb_poll_s)

    def _server(self) -> DICOMwebClient:
        token = self.settings.dicomweb_token
        headers = {"Authorization": f"Bearer {token}"} if token else None
        return DICOMwebClient(str(self.settings.dicomweb_url), headers=headers)

    def poll(self) -> list[str]:
        """Fetch every new head CT study; the ids of the analyses queued for them."""
        server = self._server()
        since = date.today() - timedelta(days=self.settings.dicomweb_lookback_days)
        studies = server.search_for_studies(
            search_filters={"ModalitiesInStudy": "CT", "StudyDate": f"{since:%Y%m%d}-"},
            fields=["StudyDescription"],
            get_remaining=True,
        )
        queued = []
        for study in studies:
            study_uid = _value(study, STUDY_UID)
            series = server.search_for_series(
                study_uid,
                search_filters={"Modality": "CT"},
                fields=["SeriesDescription", "BodyPartExamined"],
            )
            if not study_uid or not self._is_head(study, series):
                continue
            try:
                self.workers.admit()
            except ProblemError:  # queue full: the study stays unclaimed for a later poll
                log.warning("DICOMweb pull paused: the queue is full")
                break
            analysis_id = str(uuid.uuid4())
            if self._claim(study_uid, analysis_id):
                uids = [_value(s, SERIES_UID) for s in series]
                queued.append(self._fetch(server, study_uid, uids, analysis_id))
        return queued

    def _is_head(self, study: dict[str, Any], series: list[dict[str, Any]]) -> bool:
        pattern = re.compile(self.settings.dicomweb_head_pattern)
        texts = [_value(item, tag) for item in [study, *series] for tag in DESCRIPTIONS]
        return any(pattern.search(text) for text in texts)

    def _claim(self, study_uid: str, analysis_id: str) -> bool:
        """True for the one replica that records the study first."""
        values = {"study_uid": study_uid, "analysis_id": analysis_id, "time": now()}
        try:
            with self.store.engine.begin() as db:
                db.execute(insert(pulled).values(**values))
        except IntegrityError:
            return False
        return True

    def _fetch(
        self, server: DICOMwebClient, study_uid: str, series_uids: list[str], analysis_id: str
    ) -> str:
        """Stream the series into a spool folder, then queue the study's analysis."""
        folder = self.workers.spool(analysis_id)
        folder.mkdir(parents=True)
        try:
            count = 0
            for series_uid in series_uids:
                for dataset in server.iter_series(study_uid, series_uid):
                    dataset.save_as(folder / f"{count:06d}.dcm", enforce_file_format=True)
                    count += 1
            self.store.create(self.client_id, "dicomweb", Status.QUEUED, analysis_id=analysis_id)
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            with self.store.engine.begin() as db:  # let the next poll try again
                db.execute(pulled.delete().where(pulled.c.study_uid == study_uid))
            raise
        log.info("pulled study %s: %d instances", uid_digest(study_uid), count)
        return analysis_id

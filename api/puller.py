"""DICOMweb pull: poll a QIDO-RS server for new head CT studies and fetch them by WADO-RS into
jobs of the job store, for sites whose PACS answers queries rather than pushing.

Every ``dicomweb_poll_s`` the puller searches CT studies dated within
``dicomweb_lookback_days``. A study is taken once its instance count has not changed between
two polls (PACS lists a study while it is still arriving) and its description, or a series'
description or body part, matches ``dicomweb_head_pattern``. It is claimed in the ``pulled``
table (once, across restarts and replicas), its CT series are streamed instance by instance
into a spool folder (never a whole series in memory) and it is queued as an analysis owned by
``dicom_client``. A study that fails to fetch is released for a later poll; the others go on.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from dicomweb_client.api import DICOMwebClient
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from api.db import analyses, pulled
from api.files import SWEEP_AGE_S
from api.jobs import JobStore, now
from api.problems import ProblemError
from api.schemas import Status
from api.settings import Settings
from api.worker import Workers
from ich.logs import uid_digest

log = logging.getLogger("api.puller")
STUDY_UID, SERIES_UID, INSTANCES = "0020000D", "0020000E", "00201208"
DESCRIPTIONS = ("00081030", "0008103E", "00180015")
"""Study description, series description, body part examined."""


class StoppedError(Exception):
    """The gateway is stopping: the study being fetched is released."""


def _value(item: dict[str, Any], tag: str) -> str:
    values = item.get(tag, {}).get("Value") or [""]
    return str(values[0])


@dataclass
class Puller:
    """The poller of one gateway process (every replica polls; the ``pulled`` table decides
    which one fetches a study)."""

    settings: Settings
    store: JobStore
    workers: Workers
    client_id: str
    task: asyncio.Task[None] | None = field(default=None)
    stopping: threading.Event = field(default_factory=threading.Event)
    counts: dict[str, str] = field(default_factory=dict)
    """Instance count of each study at the last poll: unchanged means complete."""
    other: set[str] = field(default_factory=set)
    """Studies seen not to be head CTs (not searched again)."""

    def __post_init__(self) -> None:
        self.head = re.compile(self.settings.dicomweb_head_pattern)

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Ends the loop and the fetch in progress (at its next instance)."""
        self.stopping.set()
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
        """Fetch every new, complete head CT study; the ids of the analyses queued for them."""
        server = self._server()
        since = date.today() - timedelta(days=self.settings.dicomweb_lookback_days)
        studies = server.search_for_studies(
            search_filters={"ModalitiesInStudy": "CT", "StudyDate": f"{since:%Y%m%d}-"},
            fields=["StudyDescription", "NumberOfStudyRelatedInstances"],
            get_remaining=True,
        )
        taken = self._release_abandoned()
        counts, queued = {}, []
        for study in studies:
            uid, count = _value(study, STUDY_UID), _value(study, INSTANCES)
            counts[uid] = count
            if not uid or uid in taken or uid in self.other or self.counts.get(uid) != count:
                continue
            if self.stopping.is_set():
                break
            try:
                analysis_id = self._take(server, study, uid)
            except ProblemError:  # queue full: the rest waits for a later poll
                log.warning("DICOMweb pull paused: the queue is full")
                break
            except StoppedError:
                break
            except Exception:
                log.exception("could not fetch study %s; it is retried later", uid_digest(uid))
                continue
            if analysis_id is not None:
                queued.append(analysis_id)
        self.counts = counts
        return queued

    def _take(self, server: DICOMwebClient, study: dict[str, Any], uid: str) -> str | None:
        """Fetch one study if it is a head CT this replica claims; its analysis id."""
        series = server.search_for_series(
            uid,
            search_filters={"Modality": "CT"},
            fields=["SeriesDescription", "BodyPartExamined"],
        )
        texts = [_value(item, tag) for item in [study, *series] for tag in DESCRIPTIONS]
        if not any(self.head.search(text) for text in texts):
            self.other.add(uid)
            return None
        self.workers.admit()
        analysis_id = str(uuid.uuid4())
        if not self._claim(uid, analysis_id):
            return None
        return self._fetch(server, uid, [_value(s, SERIES_UID) for s in series], analysis_id)

    def _release_abandoned(self) -> set[str]:
        """The studies already pulled, after releasing claims whose fetch never made an
        analysis (a replica stopped mid-fetch) an hour ago."""
        stale = now() - timedelta(seconds=SWEEP_AGE_S)
        with self.store.engine.begin() as db:
            db.execute(
                delete(pulled).where(
                    pulled.c.time < stale,
                    pulled.c.analysis_id.not_in(select(analyses.c.id)),
                )
            )
            return {r.study_uid for r in db.execute(select(pulled.c.study_uid))}

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
        """Stream the series into a spool folder, then queue the study's analysis; on any
        failure leave nothing behind and release the claim."""
        folder = self.workers.files.spool(analysis_id)
        folder.mkdir(parents=True)
        try:
            count = 0
            for series_uid in series_uids:
                for dataset in server.iter_series(study_uid, series_uid):
                    if self.stopping.is_set():
                        raise StoppedError
                    dataset.save_as(folder / f"{count:06d}.dcm", enforce_file_format=True)
                    count += 1
            self.store.create(self.client_id, "dicomweb", Status.QUEUED, analysis_id=analysis_id)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            with self.store.engine.begin() as db:
                db.execute(delete(pulled).where(pulled.c.study_uid == study_uid))
            raise
        log.info("pulled study %s: %d instances", uid_digest(study_uid), count)
        return analysis_id

"""The job store: analyses, their results and the audit trail, over SQLAlchemy Core.

Every state change is a short transaction of its own, so SQLite (WAL) and PostgreSQL behave
alike and a crash leaves each analysis in a state :meth:`JobStore.unfinished` can resume from.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from api.db import analyses, audit
from api.models import Analysis, Outputs, Status
from api.problems import ProblemError
from ich.schema import ExamResult


def now() -> datetime:
    return datetime.now(UTC)


def utc(moment: datetime | None) -> datetime | None:
    """SQLite returns naive UTC datetimes, PostgreSQL aware ones: both as aware UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class JobStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self,
        client_id: str,
        source: str,
        status: Status,
        digest: str | None = None,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        analysis_id: str | None = None,
    ) -> tuple[Row, bool]:
        """A new analysis, or the one this client's ``idempotency_key`` already made
        (``created`` False).

        Raises:
            ProblemError: idempotency-conflict, the key was used for a different body.
        """
        if idempotency_key:
            found = self.by_key(client_id, idempotency_key)
            if found is not None:
                return self._same(found, digest), False
        values = {
            "id": analysis_id or str(uuid.uuid4()),
            "client_id": client_id,
            "status": status.value,
            "source": source,
            "idempotency_key": idempotency_key,
            "request_digest": digest,
            "callback_url": callback_url,
            "created": now(),
            "attempts": 0,
            "outputs": Outputs.NONE.value,
            "webhook": "none",
        }
        try:
            with self.engine.begin() as db:
                db.execute(insert(analyses).values(**values))
        except IntegrityError:  # a concurrent retry with the same key won the race
            found = self.by_key(client_id, idempotency_key or "")
            if found is None:
                raise
            return self._same(found, digest), False
        self.audit(client_id, "create", values["id"], source)
        return self.get(values["id"]), True  # type: ignore[return-value]

    def by_key(self, client_id: str, key: str) -> Row | None:
        with self.engine.connect() as db:
            return db.execute(
                select(analyses).where(
                    analyses.c.client_id == client_id, analyses.c.idempotency_key == key
                )
            ).first()

    @staticmethod
    def _same(found: Row, digest: str | None) -> Row:
        if digest and found.request_digest and found.request_digest != digest:
            raise ProblemError(
                "idempotency-conflict",
                f"Idempotency-Key was used for analysis {found.id} with a different body; use a "
                "new key for a new study.",
                "Idempotency-Key reused",
            )
        return found

    def get(self, analysis_id: str, client_id: str | None = None) -> Row | None:
        query = select(analyses).where(analyses.c.id == analysis_id)
        if client_id is not None:
            query = query.where(analyses.c.client_id == client_id)
        with self.engine.connect() as db:
            return db.execute(query).first()

    def update(self, analysis_id: str, **values: Any) -> bool:
        """Set ``values``; False if the analysis no longer exists (deleted)."""
        with self.engine.begin() as db:
            done = db.execute(update(analyses).where(analyses.c.id == analysis_id).values(**values))
        return bool(done.rowcount)

    def finish(self, analysis_id: str, **values: Any) -> bool:
        """Record the end of a running analysis; False if it was deleted meanwhile."""
        return self.update(analysis_id, finished=now(), **values)

    def claim(self, analysis_id: str) -> Row | None:
        """Mark an analysis running (counting the attempt); None if it is no longer queued
        or running (deleted, or finished by an earlier attempt)."""
        with self.engine.begin() as db:
            done = db.execute(
                update(analyses)
                .where(
                    analyses.c.id == analysis_id,
                    analyses.c.status.in_([Status.QUEUED.value, Status.RUNNING.value]),
                )
                .values(
                    status=Status.RUNNING.value, started=now(), attempts=analyses.c.attempts + 1
                )
            )
        return self.get(analysis_id) if done.rowcount else None

    def unfinished(self, *statuses: Status) -> list[str]:
        with self.engine.connect() as db:
            rows = db.execute(
                select(analyses.c.id)
                .where(analyses.c.status.in_([s.value for s in statuses]))
                .order_by(analyses.c.created)
            ).all()
        return [r.id for r in rows]

    def follow_ups_pending(self) -> list[str]:
        """Finished analyses whose DICOM objects or webhook are still to be done."""
        with self.engine.connect() as db:
            rows = db.execute(
                select(analyses.c.id).where(
                    (analyses.c.outputs == Outputs.PENDING.value)
                    | (analyses.c.webhook == "pending")
                )
            ).all()
        return [r.id for r in rows]

    def active(self) -> int:
        """Analyses accepted and not finished (the queue's depth)."""
        with self.engine.connect() as db:
            return int(
                db.execute(
                    select(func.count()).where(
                        analyses.c.status.in_([Status.QUEUED.value, Status.RUNNING.value])
                    )
                ).scalar_one()
            )

    def listing(self, client_id: str, limit: int) -> list[Row]:
        with self.engine.connect() as db:
            return list(
                db.execute(
                    select(analyses)
                    .where(analyses.c.client_id == client_id)
                    .order_by(analyses.c.created.desc())
                    .limit(limit)
                ).all()
            )

    def delete(self, analysis_id: str) -> None:
        with self.engine.begin() as db:
            db.execute(delete(analyses).where(analyses.c.id == analysis_id))

    def audit(
        self, client_id: str | None, action: str, analysis_id: str | None, detail: str = ""
    ) -> None:
        with self.engine.begin() as db:
            db.execute(
                insert(audit).values(
                    time=now(),
                    client_id=client_id,
                    action=action,
                    analysis_id=analysis_id,
                    detail=detail,
                )
            )

    def ping(self) -> bool:
        try:
            with self.engine.connect() as db:
                db.execute(select(1))
        except Exception:  # any driver error: the database is not reachable
            return False
        return True


def location(analysis_id: str) -> str:
    return f"/v1/analyses/{analysis_id}"


def as_analysis(row: Row) -> Analysis:
    """The API view of a stored analysis."""
    result = ExamResult.model_validate_json(row.result) if row.result else None
    links = {"self": location(row.id)}
    if row.outputs == Outputs.READY.value:
        links |= {
            "seg": f"{location(row.id)}/seg",
            "sr": f"{location(row.id)}/sr",
            "overlays": f"{location(row.id)}/overlays/{{n}}.png",
        }
    return Analysis(
        id=row.id,
        status=Status(row.status),
        source=row.source,
        created=utc(row.created),
        started=utc(row.started),
        finished=utc(row.finished),
        result=result,
        model=row.model,
        warnings=result.warnings if result else [],
        timings=row.timings,
        problem=row.problem,
        outputs=Outputs(row.outputs),
        links=links,
    )

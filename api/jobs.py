"""The job store: analyses, their results and the audit trail, over SQLAlchemy Core.

Every state change is a short transaction of its own, so SQLite (WAL) and PostgreSQL behave
alike and a crash leaves each analysis in a state it can be resumed from. Each analysis has an
owner, the gateway replica that accepted it or took it over: only the owner runs it, and
:meth:`JobStore.take_over` hands a replica the unfinished work of replicas whose heartbeat has
stopped, one taker per analysis.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, Select, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from api.db import analyses, audit, replicas
from api.problems import ProblemError
from api.schemas import Analysis, Outputs, Status
from ich.schema import ExamResult


def now() -> datetime:
    return datetime.now(UTC)


def utc(moment: datetime | None) -> datetime | None:
    """SQLite returns naive UTC datetimes, PostgreSQL aware ones: both as aware UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


UNFINISHED = (Status.RECEIVING.value, Status.QUEUED.value, Status.RUNNING.value)
PENDING = "pending"
FOLLOW_UPS = (analyses.c.outputs, analyses.c.webhook, analyses.c.notified, analyses.c.returned)
"""What a done analysis may still owe: DICOM objects, webhook, positive notice, send-back."""


def follow_ups_due(row: Row) -> bool:
    return any(getattr(row, column.name) == PENDING for column in FOLLOW_UPS)


class JobStore:
    """The analyses as one replica (``replica``, its id among the gateways) sees them."""

    def __init__(self, engine: Engine, replica: str = "local") -> None:
        self.engine, self.replica = engine, replica

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
            "owner": self.replica,
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
        """Set ``values`` on an analysis this replica owns; False if it was deleted or taken
        over meanwhile (a late write of a former owner changes nothing)."""
        with self.engine.begin() as db:
            done = db.execute(
                update(analyses)
                .where(analyses.c.id == analysis_id, analyses.c.owner == self.replica)
                .values(**values)
            )
        return bool(done.rowcount)

    def finish(self, analysis_id: str, **values: Any) -> bool:
        """Record the end of a running analysis; False if deleted or taken over meanwhile."""
        return self.update(analysis_id, finished=now(), **values)

    def claim(self, analysis_id: str) -> Row | None:
        """Mark an analysis running (counting the attempt); None if it is no longer queued
        or running (deleted, finished by an earlier attempt) or no longer this replica's."""
        with self.engine.begin() as db:
            done = db.execute(
                update(analyses)
                .where(
                    analyses.c.id == analysis_id,
                    analyses.c.status.in_([Status.QUEUED.value, Status.RUNNING.value]),
                    analyses.c.owner == self.replica,
                )
                .values(
                    status=Status.RUNNING.value, started=now(), attempts=analyses.c.attempts + 1
                )
            )
        return self.get(analysis_id) if done.rowcount else None

    def heartbeat(self, lease_s: float) -> None:
        """Record that this replica is alive (and first, that it exists); forget replicas
        silent for ten leases (their work was taken over long ago).

        Heartbeats are compared across replicas by their own clocks: the lease (30 s) is
        meant to be far above the skew of clocks kept by NTP."""
        with self.engine.begin() as db:
            beat = db.execute(
                update(replicas).where(replicas.c.id == self.replica).values(heartbeat=now())
            )
            if not beat.rowcount:
                db.execute(insert(replicas).values(id=self.replica, started=now(), heartbeat=now()))
            db.execute(
                delete(replicas).where(
                    replicas.c.heartbeat < now() - timedelta(seconds=10 * lease_s)
                )
            )

    def retire(self) -> None:
        """This replica stops: the others take over its unfinished work at their next beat."""
        with self.engine.begin() as db:
            db.execute(delete(replicas).where(replicas.c.id == self.replica))

    def others_alive(self, lease_s: float) -> bool:
        """Whether another replica has beaten within ``lease_s`` (and may be receiving)."""
        with self.engine.connect() as db:
            return (
                db.execute(
                    select(replicas.c.id).where(
                        replicas.c.id != self.replica,
                        replicas.c.heartbeat >= now() - timedelta(seconds=lease_s),
                    )
                ).first()
                is not None
            )

    def take_over(self, lease_s: float, own: bool) -> list[Row]:
        """The unfinished analyses (and pending DICOM objects or webhooks) this replica is to
        run, oldest first: those with no owner or an owner without a heartbeat in ``lease_s``,
        made this replica's one at a time (a concurrent taker gets none of the same), and
        with ``own`` those it already owns (a restart under the same replica id)."""
        ownerless = or_(analyses.c.owner.is_(None), analyses.c.owner.not_in(self._live(lease_s)))
        query = (
            select(analyses)
            .where(
                or_(analyses.c.status.in_(UNFINISHED), *(c == PENDING for c in FOLLOW_UPS)),
                or_(ownerless, analyses.c.owner == self.replica) if own else ownerless,
            )
            .order_by(analyses.c.created)
        )
        with self.engine.connect() as db:
            found = db.execute(query).all()
        taken = []
        for row in found:
            if row.owner == self.replica:
                taken.append(row)
                continue
            # Still the same owner, and that owner still silent: one taker, and none from a
            # replica that came back (a restarted container) since the query.
            previous = (
                analyses.c.owner.is_(None)
                if row.owner is None
                else (analyses.c.owner == row.owner) & analyses.c.owner.not_in(self._live(lease_s))
            )
            with self.engine.begin() as db:
                moved = db.execute(
                    update(analyses)
                    .where(analyses.c.id == row.id, previous)
                    .values(owner=self.replica)
                )
            if moved.rowcount:
                taken.append(row)
        return taken

    @staticmethod
    def _live(lease_s: float) -> Select[tuple[str]]:
        return select(replicas.c.id).where(
            replicas.c.heartbeat >= now() - timedelta(seconds=lease_s)
        )

    def active(self) -> int:
        """This replica's analyses accepted and not finished (its queue's depth), studies
        still receiving instances included: each holds spool space and will be queued."""
        with self.engine.connect() as db:
            return int(
                db.execute(
                    select(func.count()).where(
                        analyses.c.status.in_(UNFINISHED),
                        analyses.c.owner == self.replica,
                    )
                ).scalar_one()
            )

    def listing(self, client_id: str, limit: int, since: datetime | None = None) -> list[Row]:
        """This client's analyses, newest first (those created since ``since``)."""
        query = select(analyses).where(analyses.c.client_id == client_id)
        if since is not None:
            query = query.where(analyses.c.created >= since)
        with self.engine.connect() as db:
            return list(db.execute(query.order_by(analyses.c.created.desc()).limit(limit)).all())

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

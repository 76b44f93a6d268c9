"""The job store's tables (SQLAlchemy Core) on SQLite (WAL) or PostgreSQL.

One schema for both: clients (API keys, hashed), analyses (the jobs and their results), the
gateway replicas alive (their heartbeats: each analysis has an owner, and a replica takes over
only the analyses of one whose heartbeat stopped) and an append-only audit trail. SQLite is
the embedded default; ``DATABASE_URL`` picks PostgreSQL, a server a deployment backs up and
operates on its own, and the one several replicas share.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

BUSY_TIMEOUT_S = 10.0
"""How long a statement waits for a lock, a pooled connection or a new connection before the
request gets 503 database-unavailable (request handlers run in threads, so waits block none)."""
_AWAY = re.compile(
    r"database is locked|database table is locked|unable to open database|disk i/o error"
    r"|connection|connect|server closed|terminating|shutting down|lock timeout|timeout",
    re.IGNORECASE,
)


UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError)
"""The error types a locked, restarting or unreachable database raises; :func:`unavailable`
tells those apart from a wrong statement of the same type."""


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database is locked, restarting or unreachable (retry
    later), rather than given a statement it cannot run (a bug, to surface as one)."""
    if isinstance(error, InterfaceError | PoolTimeoutError):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OperationalError) and bool(_AWAY.search(str(error.orig)))


metadata = MetaData()

clients = Table(
    "clients",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("key_prefix", String(16), unique=True),
    Column("key_hash", String(64)),
    Column("scopes", String(200), nullable=False),
    Column("webhook_secret", String(64), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("revoked", DateTime(timezone=True)),
)

analyses = Table(
    "analyses",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("client_id", String(32), ForeignKey("clients.id"), nullable=False, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("source", String(16), nullable=False),
    Column("idempotency_key", String(200)),
    Column("request_digest", String(64)),
    Column("study_digest", String(12)),
    Column("callback_url", Text),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("started", DateTime(timezone=True)),
    Column("finished", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("problem", JSON),
    Column("result", Text),
    Column("model", JSON),
    Column("timings", JSON),
    Column("outputs", String(16), nullable=False, default="none"),
    Column("webhook", String(16), nullable=False, default="none"),
    Column("owner", String(64), index=True),
    # Follow-ups beyond the DICOM objects and the webhook (None: not due): the notification of
    # a positive study, and the SEG and SR sent back to the DICOM destination.
    Column("notified", String(16)),
    Column("returned", String(16)),
    UniqueConstraint("client_id", "idempotency_key", name="uq_idempotency"),
)

replicas = Table(
    "replicas",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("started", DateTime(timezone=True), nullable=False),
    Column("heartbeat", DateTime(timezone=True), nullable=False),
)

pulled = Table(
    "pulled",
    metadata,
    Column("study_uid", String(64), primary_key=True),
    Column("analysis_id", String(36)),
    Column("time", DateTime(timezone=True), nullable=False),
)
"""Studies fetched from the DICOMweb server: each once, by whichever replica claims it first."""

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("client_id", String(32)),
    Column("action", String(32), nullable=False),
    Column("analysis_id", String(36), index=True),
    Column("detail", Text),
)


def connect(url: str) -> Engine:
    """An engine with the tables created; SQLite gets WAL, a busy timeout and foreign keys."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}
        )

        @event.listens_for(engine, "connect")
        def _pragmas(connection: object, _: object) -> None:
            cursor = connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
    else:
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_size=10,
            pool_timeout=BUSY_TIMEOUT_S,
            connect_args={
                "connect_timeout": int(BUSY_TIMEOUT_S),
                "options": f"-c lock_timeout={int(BUSY_TIMEOUT_S * 1000)}",
            },
        )
    metadata.create_all(engine)
    _add_columns(engine)
    return engine


def _add_columns(engine: Engine) -> None:
    """Columns added to a table since a database was made (nullable, with their indexes),
    added to it: the schema only ever grows by such columns. Replicas starting together may
    race to add one; the loser finds it there."""
    for table in metadata.sorted_tables:
        missing = [c for c in table.columns if c.name not in _columns(engine, table.name)]
        for column in missing:
            if not column.nullable:
                raise RuntimeError(f"{table.name}.{column.name} cannot be added to old rows")
            kind = column.type.compile(engine.dialect)
            try:
                with engine.begin() as db:
                    db.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
            except DBAPIError:
                if column.name not in _columns(engine, table.name):
                    raise
        for index in table.indexes if missing else ():
            index.create(engine, checkfirst=True)


def _columns(engine: Engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}

"""The job store and API keys behave the same on SQLite (WAL) and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text

from api.db import connect, metadata
from api.jobs import JobStore, as_analysis, now
from api.keys import create_key, find_key, list_keys, revoke_key, token_client
from api.problems import ProblemError
from api.schemas import Status


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "sqlite":
        return connect(f"sqlite:///{tmp_path / 'ich.db'}")
    url = request.getfixturevalue("postgres")
    engine = connect(url)
    with engine.begin() as db:  # a clean slate per test
        db.execute(text("TRUNCATE analyses, audit, clients, replicas CASCADE"))
    return engine


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'ich.db'}")
    with engine.connect() as db:
        assert db.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"


def test_keys_are_stored_hashed_found_and_revoked(engine: Engine) -> None:
    issued = create_key(engine, "ris-bridge", ("analyses:read",))
    assert find_key(engine, issued.key) == issued.client
    other = "y" if issued.key.endswith("x") else "x"  # one changed character, never the same
    assert find_key(engine, issued.key[:-1] + other) is None
    assert find_key(engine, "ich_nothing_here") is None
    with engine.connect() as db:
        stored = " ".join(str(v) for row in db.execute(text("SELECT * FROM clients")) for v in row)
    assert issued.key not in stored and issued.key.split("_", 2)[2] not in stored
    listed = list_keys(engine)
    assert [r["prefix"] for r in listed] == [issued.prefix] and listed[0]["revoked"] is None
    assert revoke_key(engine, issued.prefix) == issued.client.id
    assert find_key(engine, issued.key) is None
    with pytest.raises(ValueError, match="scopes"):
        create_key(engine, "x", ("admin",))
    token = token_client(engine, "user@example", frozenset({"analyses:read"}))
    assert token == token_client(engine, "user@example", frozenset({"analyses:read"}))


def test_jobs_idempotency_claim_resume_and_delete(engine: Engine) -> None:
    store = JobStore(engine)
    alice = create_key(engine, "alice").client.id
    bob = create_key(engine, "bob").client.id
    first, created = store.create(alice, "upload", Status.QUEUED, "d1", "key-1")
    assert created and first.status == "queued"
    again, created = store.create(alice, "upload", Status.QUEUED, "d1", "key-1")
    assert not created and again.id == first.id
    with pytest.raises(ProblemError) as conflict:
        store.create(alice, "upload", Status.QUEUED, "d2", "key-1")
    assert conflict.value.code == "idempotency-conflict"
    other, created = store.create(bob, "upload", Status.QUEUED, "d2", "key-1")
    assert created and other.id != first.id  # keys are per client
    assert store.get(first.id, bob) is None and store.get(first.id, alice) is not None
    assert store.active() == 2
    claimed = store.claim(first.id)
    assert claimed is not None and claimed.status == "running" and claimed.attempts == 1
    # A crash here leaves it running: a restart finds it with the queued one, oldest first.
    assert [r.id for r in store.take_over(30, own=True)] == [first.id, other.id]
    store.update(first.id, status=Status.DONE.value)
    assert store.claim(first.id) is None  # finished work is not redone
    assert as_analysis(store.get(first.id)).links["self"].endswith(first.id)
    assert [r.id for r in store.listing(alice, 10)] == [first.id]
    store.delete(first.id)
    assert store.get(first.id) is None and store.ping()


def test_uploads_in_flight_hold_their_place_in_the_queue(tmp_path: Path) -> None:
    from api.metrics import Metrics
    from api.settings import Settings
    from api.worker import Workers

    settings = Settings(data_dir=tmp_path, queue_limit=2, min_free_bytes=0)
    settings.spool_dir.mkdir()
    store = JobStore(connect(settings.url))
    workers = Workers(settings, store, inference=None, metrics=Metrics())  # type: ignore[arg-type]

    async def uploads() -> None:
        async with workers.place(), workers.place():
            with pytest.raises(ProblemError) as full:
                async with workers.place():
                    pass
            assert full.value.code == "queue-full"

    asyncio.run(uploads())
    workers.admit()  # both uploads ended: room again
    starved = Workers(
        settings.model_copy(update={"min_free_bytes": 1 << 62}),
        store,
        None,
        Metrics(),  # type: ignore[arg-type]
    )
    with pytest.raises(ProblemError) as short:
        starved.admit()
    assert short.value.code == "storage-full" and "bytes free" in short.value.message


def test_replicas_take_over_only_the_work_of_a_stopped_replica(engine: Engine) -> None:
    client = create_key(engine, "bridge").client.id
    a, b, c = (JobStore(engine, name) for name in ("a", "b", "c"))
    for replica in (a, b, c):
        replica.heartbeat(30)
    queued, _ = a.create(client, "upload", Status.QUEUED)
    running, _ = a.create(client, "upload", Status.QUEUED)
    assert a.claim(running.id) is not None and b.claim(queued.id) is None  # a's, not b's
    receiving, _ = a.create(client, "stow", Status.RECEIVING)
    done, _ = a.create(client, "upload", Status.QUEUED)
    a.update(done.id, status=Status.DONE.value, outputs="pending")
    finished, _ = a.create(client, "upload", Status.QUEUED)
    a.update(finished.id, status=Status.DONE.value, outputs="ready")
    assert a.active() == 3 and b.active() == 0  # receiving counts: it holds spool space
    assert b.take_over(30, own=False) == [] and b.others_alive(30)

    with engine.begin() as db:  # a's heartbeat stops: 31 s ago
        db.execute(text("UPDATE replicas SET heartbeat = :t WHERE id = 'a'"), {"t": _ago(31)})
    taken = b.take_over(30, own=False)
    assert [r.id for r in taken] == [queued.id, running.id, receiving.id, done.id]
    assert c.take_over(30, own=False) == []  # one taker per analysis
    assert {b.get(r.id).owner for r in taken} == {"b"} and b.get(finished.id).owner == "a"
    assert b.claim(running.id).attempts == 2 and b.active() == 3
    # a comes back too late: its writes change nothing of what b now runs
    assert not a.finish(running.id, status=Status.DONE.value)
    assert b.get(running.id).status == "running" and b.update(running.id, attempts=2)

    b.retire()  # a clean stop: its work moves at the next beat, without waiting for the lease
    assert not c.others_alive(30)
    assert [r.id for r in c.take_over(30, own=False)] == [t.id for t in taken]


def _ago(seconds: float) -> datetime:
    return now() - timedelta(seconds=seconds)


def test_an_older_database_gains_the_new_columns(tmp_path: Path) -> None:
    """A database made before analyses had owners (the schema minus that column)."""
    path = tmp_path / "old.db"
    with create_engine(f"sqlite:///{path}").begin() as db:
        metadata.create_all(db)
        db.execute(text("DROP INDEX ix_analyses_owner"))
        db.execute(text("ALTER TABLE analyses DROP COLUMN owner"))
        db.execute(
            text(
                "INSERT INTO analyses (id, client_id, status, source, created, attempts, "
                "outputs, webhook) VALUES ('x', 'c', 'queued', 'upload', '2026-01-01', 0, "
                "'none', 'none')"
            )
        )
    engine = connect(f"sqlite:///{path}")
    with engine.connect() as db:
        assert db.execute(text("SELECT id, owner FROM analyses")).one() == ("x", None)
    assert "ix_analyses_owner" in {i["name"] for i in inspect(engine).get_indexes("analyses")}
    assert [r.id for r in JobStore(engine).take_over(30, own=True)] == ["x"]  # ownerless
    connect(f"sqlite:///{path}")  # a second start finds nothing to add


def test_only_a_locked_or_unreachable_database_counts_as_unavailable(tmp_path: Path) -> None:
    from sqlalchemy.exc import OperationalError

    from api.db import unavailable

    engine = connect(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(OperationalError) as wrong, engine.connect() as db:
        db.execute(text("SELECT * FROM no_such_table"))
    assert not unavailable(wrong.value)  # a bug: it must surface as one
    locker = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    busy = create_engine(f"sqlite:///{tmp_path / 'x.db'}", connect_args={"timeout": 0.1})
    try:
        with pytest.raises(OperationalError) as locked, busy.begin() as db:
            db.execute(text("DELETE FROM audit"))
    finally:
        locker.execute("COMMIT")
    assert unavailable(locked.value), locked.value

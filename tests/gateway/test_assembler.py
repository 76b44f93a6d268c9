"""The study assembler of STOW-RS and C-STORE, without a server: when a study's quiet period
passes, its analysis is marked queued by a database write that runs off the event loop, retried
when the database does not answer, and submitted exactly once (or not at all once deleted)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from api.settings import Settings
from api.stow import Assembler


@dataclass
class _Store:
    """A job store whose ``update`` records the thread it runs in; slow or failing on ask."""

    delay_s: float = 0.0
    failures: int = 0
    threads: list[threading.Thread] = field(default_factory=list)

    def update(self, analysis_id: str, **values: object) -> bool:
        self.threads.append(threading.current_thread())
        time.sleep(self.delay_s)  # a database that takes its time blocks only this thread
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the database is away")
        return True


@dataclass
class _Workers:
    submitted: list[str] = field(default_factory=list)

    def submit(self, analysis_id: str) -> None:
        self.submitted.append(analysis_id)


def _assembler(tmp_path: Path, store: _Store) -> tuple[Assembler, _Workers]:
    workers = _Workers()
    settings = Settings(data_dir=tmp_path, stow_quiet_s=0)
    return Assembler(settings, store, workers), workers  # type: ignore[arg-type]


async def _settled(assembler: Assembler) -> None:
    while assembler.timers or assembler.queuing:
        await asyncio.sleep(0.01)


def test_the_queuing_write_runs_off_the_event_loop(tmp_path: Path) -> None:
    store = _Store(delay_s=0.3)
    assembler, workers = _assembler(tmp_path, store)

    async def run() -> tuple[threading.Thread, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        assembler.resume("a1")
        await _settled(assembler)
        ticker.cancel()
        return threading.current_thread(), ticks

    loop_thread, ticks = asyncio.run(run())
    assert store.threads and all(t is not loop_thread for t in store.threads)
    assert ticks >= 10  # the loop kept running through the 0.3 s write
    assert workers.submitted == ["a1"]


def test_a_database_that_does_not_answer_is_retried_and_the_study_submitted_once(
    tmp_path: Path,
) -> None:
    store = _Store(failures=2)
    assembler, workers = _assembler(tmp_path, store)

    async def run() -> None:
        assembler.resume("a1")
        await _settled(assembler)

    asyncio.run(run())
    assert len(store.threads) == 3 and workers.submitted == ["a1"]


def test_a_rearm_during_the_write_does_not_submit_twice(tmp_path: Path) -> None:
    store = _Store(delay_s=0.2)
    assembler, workers = _assembler(tmp_path, store)

    async def run() -> None:
        assembler.resume("a1")
        while not store.threads:  # the write has begun
            await asyncio.sleep(0.01)
        assembler.resume("a1")  # e.g. a take-over finds it still receiving
        await _settled(assembler)
        await asyncio.sleep(0.05)  # a timer left armed would fire by now

    asyncio.run(run())
    assert workers.submitted == ["a1"] and len(store.threads) == 1


def test_an_analysis_deleted_during_the_write_is_not_submitted(tmp_path: Path) -> None:
    store = _Store(delay_s=0.2)
    assembler, workers = _assembler(tmp_path, store)

    async def run() -> None:
        assembler.resume("a1")
        while not store.threads:
            await asyncio.sleep(0.01)
        assembler.forget("a1")
        await _settled(assembler)
        await asyncio.sleep(0.3)

    asyncio.run(run())
    assert workers.submitted == []

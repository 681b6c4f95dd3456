"""The writer's bounded waits: a waiter whose write has not committed within the timeout
fails with `CommitTimedOut` (receiver/writer/deadlines.py), one settled in time never does;
and a failed batch's one-by-one replay stops at the first write that cannot reach the
database (receiver/writer/group_commit.py)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from receiver.writer.auto import committer_for
from receiver.writer.deadlines import CommitDeadlines, CommitTimedOut
from vlmhooks.store.db import make_engine


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_a_write_fails_at_its_deadline_and_not_a_moment_before(
    loop: asyncio.AbstractEventLoop,
) -> None:
    clock = Clock(100.0)
    deadlines = CommitDeadlines(loop, 10.0, clock=clock)
    first, second = loop.create_future(), loop.create_future()
    deadlines.watch(first)  # due at 110
    clock.now = 105.0
    deadlines.watch(second)  # due at 115

    clock.now = 109.999
    deadlines.expire()
    assert not first.done() and not second.done()

    clock.now = 110.0
    deadlines.expire()
    error = first.exception()
    assert isinstance(error, CommitTimedOut)
    assert str(error) == "the database did not commit within 10 s"
    assert not second.done()

    clock.now = 114.5
    deadlines.expire()
    assert not second.done()
    clock.now = 115.0
    deadlines.expire()
    assert isinstance(second.exception(), CommitTimedOut)


def test_a_write_committed_in_time_keeps_its_result(loop: asyncio.AbstractEventLoop) -> None:
    clock = Clock(0.0)
    deadlines = CommitDeadlines(loop, 2.5, clock=clock)
    committed, late = loop.create_future(), loop.create_future()
    deadlines.watch(committed)
    deadlines.watch(late)
    committed.set_result("stored")
    clock.now = 2.5
    deadlines.expire()
    assert committed.result() == "stored"
    assert isinstance(late.exception(), CommitTimedOut)
    # A waiter that comes after a long quiet spell gets the full timeout from its own start.
    clock.now = 1000.0
    fresh = loop.create_future()
    deadlines.watch(fresh)
    clock.now = 1002.4
    deadlines.expire()
    assert not fresh.done()
    fresh.set_result("stored")
    clock.now = 5000.0
    deadlines.expire()
    assert fresh.result() == "stored"


def test_the_timer_fails_a_waiter_on_the_loop_by_itself() -> None:
    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        deadlines = CommitDeadlines(loop, 0.05)
        waiter = loop.create_future()
        started = time.monotonic()
        deadlines.watch(waiter)
        with pytest.raises(CommitTimedOut):
            await asyncio.wait_for(waiter, 5.0)
        return time.monotonic() - started

    assert 0.04 <= asyncio.run(scenario()) < 2.0


def test_a_replay_stops_at_the_first_write_that_cannot_reach_the_database(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "database"
    folder.mkdir()
    engine = make_engine(f"sqlite:///{folder / 'vlmhooks.db'}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE probe (id INTEGER PRIMARY KEY)"))
    connects: list[object] = []
    sa.event.listen(engine, "do_connect", lambda *_args: connects.append(None))
    writer = committer_for(engine)

    def insert(row_id: int) -> Any:
        def op(connection: Connection) -> int:
            connection.execute(sa.text("INSERT INTO probe VALUES (:id)"), {"id": row_id})
            return row_id

        return op

    def lose_the_database(connection: Connection) -> None:
        # The file and its folder gone, the connection with them: no new one can open.
        shutil.rmtree(folder)
        connection.invalidate()
        raise RuntimeError("the database went away")

    async def scenario() -> list[Any]:
        writer.start()
        assert await writer.run(insert(1)) == 1
        # Queued in one loop turn: one batch, which fails and is replayed alone.
        results = await asyncio.gather(
            writer.run(lose_the_database),
            *(writer.run(insert(row_id)) for row_id in range(2, 8)),
            return_exceptions=True,
        )
        await writer.drain()
        return list(results)

    try:
        results = asyncio.run(scenario())
    finally:
        writer.stop()
        engine.dispose()
    assert all(isinstance(result, OperationalError) for result in results), results
    # One attempt to reconnect, not one per write: the rest fail with the first's error.
    assert len(connects) == 1
    assert all(result is results[0] for result in results)

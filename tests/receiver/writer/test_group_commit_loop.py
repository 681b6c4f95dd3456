"""LoopCommitter, the SQLite writer: batches form on the event loop; a
phased batch opens (when the write lock is free), reads, plans and runs its statements on
the loop and commits in one helper thread, which gets the GIL back quickly; plain writes
run in the helper; a failing write never fails its neighbours, and `drain` + `stop` commit
what is queued and refuse the rest."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from receiver.writer.gil_handoff import HANDOFF_SWITCH_INTERVAL_SECONDS
from receiver.writer.group_commit import WriterStopped
from receiver.writer.loop_committer import LOOP_WRITE_MAX_BYTES, LoopCommitter
from tests.receiver.group_commit_support import PROBE, probe_ids, probe_insert
from vlmhooks.store.db import make_engine


def test_writes_queued_together_share_one_commit_in_the_helper_thread(probe: Engine) -> None:
    sizes: list[int] = []
    threads: list[str] = []
    writer = LoopCommitter(probe, on_batch=sizes.append)

    async def scenario() -> tuple[list[Any], str]:
        writer.start()
        results = await asyncio.gather(
            *(writer.run(probe_insert(i, threads)) for i in range(1, 51))
        )
        await writer.drain()
        return results, threading.current_thread().name

    try:
        results, loop_thread = asyncio.run(scenario())
    finally:
        writer.stop()
    assert results == list(range(1, 51))
    assert sizes == [50]
    # Statements block (a lock wait, the disk): never on the event loop's thread.
    assert len(set(threads)) == 1
    assert loop_thread not in threads
    assert probe_ids(probe) == list(range(1, 51))


class RecordingPhases:
    """A phased batch that records which thread ran each phase, and inserts its items."""

    def __init__(
        self, items: list[int], dialect: str, seen: dict[str, set[str]], payload_bytes: int = 0
    ) -> None:
        self.items, self.dialect, self.seen = items, dialect, seen
        self.payload_bytes = payload_bytes

    def _saw(self, phase: str) -> None:
        self.seen.setdefault(phase, set()).add(threading.current_thread().name)

    def read(self, connection: Connection) -> None:
        self._saw("read")

    def plan(self) -> None:
        self._saw("plan")

    def write(self, connection: Connection) -> list[int]:
        self._saw("write")
        for item in self.items:
            connection.execute(PROBE.insert().values(id=item))
        return [item * 10 for item in self.items]


def commits_seen(engine: Engine) -> list[tuple[str, float]]:
    """Each COMMIT's thread and the switch interval it ran under, as the engine reports."""
    seen: list[tuple[str, float]] = []

    def on_commit(_connection: Connection) -> None:
        seen.append((threading.current_thread().name, sys.getswitchinterval()))

    event.listen(engine, "commit", on_commit)
    return seen


def test_a_phased_batch_runs_on_the_loop_and_commits_in_the_helper(probe: Engine) -> None:
    seen: dict[str, set[str]] = {}
    sizes: list[int] = []
    commits = commits_seen(probe)
    writer = LoopCommitter(probe, on_batch=sizes.append)

    def apply_many(_connection: Connection, _items: list[int]) -> list[int]:
        raise AssertionError("the loop writer takes the phased form")

    def phases(items: list[int], dialect: str) -> RecordingPhases:
        assert dialect == probe.dialect.name
        return RecordingPhases(items, dialect, seen)

    async def scenario() -> tuple[list[int], str]:
        writer.start()
        results = await asyncio.gather(
            *(writer.run_batched(apply_many, i, phases=phases) for i in range(1, 21))
        )
        await writer.drain()
        return list(results), threading.current_thread().name

    before = sys.getswitchinterval()
    try:
        results, loop_thread = asyncio.run(scenario())
    finally:
        writer.stop()
    assert results == [i * 10 for i in range(1, 21)]
    assert sizes == [20]
    assert seen["plan"] == {loop_thread}
    ((commit_thread, interval),) = commits
    assert commit_thread != loop_thread  # the fsync never blocks the loop
    if probe.dialect.name == "sqlite":
        # The lock was free: no hop to open; the statements are CPU under the held lock.
        assert seen["read"] == seen["write"] == {loop_thread}
        # The helper takes the GIL back within 0.2 ms; the default returns afterwards.
        assert interval == pytest.approx(HANDOFF_SWITCH_INTERVAL_SECONDS)
    else:
        # Never a network round trip on the loop.
        assert seen["read"] == seen["write"] == {commit_thread}
    assert sys.getswitchinterval() == pytest.approx(before)
    assert probe_ids(probe) == list(range(1, 21))


def test_a_failing_write_is_replayed_alone_and_fails_alone(probe: Engine) -> None:
    with probe.begin() as connection:
        connection.execute(PROBE.insert().values(id=5))
    writer = LoopCommitter(probe)

    def writes_then_raises(connection: Connection) -> None:
        connection.execute(PROBE.insert().values(id=100))
        raise ValueError("application error after writing")

    async def scenario() -> list[Any]:
        writer.start()
        ops = [probe_insert(i) for i in range(1, 5)] + [
            probe_insert(5),
            writes_then_raises,
            probe_insert(6),
        ]
        return await asyncio.gather(*(writer.run(op) for op in ops), return_exceptions=True)

    try:
        results = asyncio.run(scenario())
    finally:
        writer.stop()
    assert results[:4] == [1, 2, 3, 4]
    assert isinstance(results[4], IntegrityError)
    assert isinstance(results[5], ValueError)
    assert results[6] == 6
    assert probe_ids(probe) == [1, 2, 3, 4, 5, 6]


def test_a_batch_carrying_megabytes_writes_in_the_helper(sqlite_url: str) -> None:
    """Copying megabytes into SQLite would hold up every request on the loop: such a batch
    runs its statements in the helper, with its COMMIT."""
    sqlite_engine = make_engine(sqlite_url)
    PROBE.create(sqlite_engine)
    seen: dict[str, set[str]] = {}
    commits = commits_seen(sqlite_engine)
    writer = LoopCommitter(sqlite_engine)

    def phases(items: list[int], dialect: str) -> RecordingPhases:
        return RecordingPhases(items, dialect, seen, payload_bytes=LOOP_WRITE_MAX_BYTES + 1)

    async def scenario() -> tuple[list[int], str]:
        writer.start()
        results = await asyncio.gather(
            *(writer.run_batched(_refuse, i, phases=phases) for i in range(1, 4))
        )
        await writer.drain()
        return list(results), threading.current_thread().name

    try:
        results, loop_thread = asyncio.run(scenario())
    finally:
        writer.stop()
    assert results == [10, 20, 30]
    ((commit_thread, _interval),) = commits
    assert seen["read"] == seen["plan"] == {loop_thread}
    assert seen["write"] == {commit_thread} != {loop_thread}
    assert probe_ids(sqlite_engine) == [1, 2, 3]
    sqlite_engine.dispose()


def test_a_phased_batch_failing_on_the_loop_is_rolled_back_and_replayed_alone(
    probe: Engine,
) -> None:
    """A statement that fails on the loop (here a duplicate key) undoes the whole batch;
    each write is then applied alone, so only the bad one fails, and the next batch runs on
    the loop again."""
    with probe.begin() as connection:
        connection.execute(PROBE.insert().values(id=3))
    seen: dict[str, set[str]] = {}
    writer = LoopCommitter(probe)

    def insert_alone(connection: Connection, items: list[int]) -> list[int]:
        for item in items:
            connection.execute(PROBE.insert().values(id=item))
        return [item * 10 for item in items]

    def phases(items: list[int], dialect: str) -> RecordingPhases:
        return RecordingPhases(items, dialect, seen)

    async def scenario() -> tuple[list[Any], int]:
        writer.start()
        results = await asyncio.gather(
            *(writer.run_batched(insert_alone, i, phases=phases) for i in range(1, 6)),
            return_exceptions=True,
        )
        later = await writer.run_batched(insert_alone, 6, phases=phases)
        await writer.drain()
        return list(results), later

    try:
        results, later = asyncio.run(scenario())
    finally:
        writer.stop()
    assert [type(result) for result in results] == [int, int, IntegrityError, int, int]
    assert [r for r in results if isinstance(r, int)] == [10, 20, 40, 50]
    assert later == 60
    assert probe_ids(probe) == [1, 2, 3, 4, 5, 6]


def test_drain_then_stop_commits_what_is_queued_then_refuses(probe: Engine) -> None:
    writer = LoopCommitter(probe)

    async def scenario() -> list[int]:
        writer.start()
        queued = [asyncio.ensure_future(writer.run(probe_insert(i))) for i in range(1, 4)]
        await asyncio.sleep(0)  # queued, not yet committed
        await writer.drain()
        writer.stop()
        with pytest.raises(WriterStopped):
            await writer.run(probe_insert(9))
        return [future.result() for future in queued]

    assert asyncio.run(scenario()) == [1, 2, 3]
    assert probe_ids(probe) == [1, 2, 3]


def test_a_batch_waits_for_another_process_lock_in_the_helper_not_on_the_loop(
    tmp_path: Path,
) -> None:
    """Another process holds SQLite's write lock: the batch's BEGIN IMMEDIATE and reads move
    to the helper thread, which waits; the loop keeps running; then the next batch, with
    the lock free again, opens on the loop on the same connection. Every COMMIT is the
    helper's."""
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    engine = make_engine(url, pool_size=1, immediate_writes=True)
    PROBE.create(engine)
    commits = commits_seen(engine)
    seen: dict[str, set[str]] = {}
    first_batch: dict[str, set[str]] = {}
    writer = LoopCommitter(engine)

    def phases(items: list[int], dialect: str) -> RecordingPhases:
        return RecordingPhases(items, dialect, seen)

    async def scenario() -> tuple[int, int, str]:
        writer.start()
        other = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's batch, holding the lock
        ticks = 0
        write = asyncio.ensure_future(writer.run_batched(_refuse, 1, phases=phases))
        while ticks < 20:  # the loop is free while the batch waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert not write.done()
        other.execute("COMMIT")
        other.close()
        first = await write
        first_batch.update({phase: set(threads) for phase, threads in seen.items()})
        seen.clear()
        second = await writer.run_batched(_refuse, 2, phases=phases)
        await writer.drain()
        return first, second, threading.current_thread().name

    try:
        first, second, loop_thread = asyncio.run(scenario())
    finally:
        writer.stop()
        engine.dispose()
    assert (first, second) == (10, 20)
    # The first batch waited for the lock, and read, in the helper; once it held the lock
    # it planned and ran its statements on the loop.
    assert first_batch["read"] != {loop_thread}
    assert first_batch["plan"] == first_batch["write"] == {loop_thread}
    # The second, lock free, opened and read on the loop (on the connection that had failed
    # its try).
    assert seen["read"] == seen["plan"] == seen["write"] == {loop_thread}
    assert len(commits) == 2
    assert all(thread != loop_thread for thread, _interval in commits)
    check = make_engine(url)
    assert probe_ids(check) == [1, 2]
    check.dispose()


def _refuse(_connection: Connection, _items: list[int]) -> list[int]:
    raise AssertionError("the loop writer takes the phased form")

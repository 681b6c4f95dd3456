"""ThreadCommitter, the writer thread: batches form under concurrency, one failing write
never fails (or leaks into) its neighbours, and no waiter is left hanging when it stops."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from receiver.writer import group_commit
from receiver.writer.group_commit import WriterStopped
from receiver.writer.thread_committer import ThreadCommitter
from tests.receiver.group_commit_support import (
    PROBE,
    blocking_op,
    probe_ids,
    probe_insert,
    wait_until_set,
)
from vlmhooks.store.db import make_engine


def test_concurrent_writes_share_one_commit(probe: Engine) -> None:
    sizes: list[int] = []
    commits: list[int] = []
    writer = ThreadCommitter(probe, on_batch=sizes.append, after_commit=lambda: commits.append(1))
    gate, entered = threading.Event(), threading.Event()

    async def scenario() -> list[Any]:
        writer.start()
        first = asyncio.ensure_future(writer.run(blocking_op(gate, entered)))
        await wait_until_set(entered)
        # These queue up while the writer is busy, so they must form a single batch.
        rest = [asyncio.ensure_future(writer.run(probe_insert(i))) for i in range(1, 51)]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(first, *rest)

    try:
        results = asyncio.run(scenario())
    finally:
        writer.stop()
    assert results == ["unblocked", *range(1, 51)]
    assert sizes == [1, 50] and len(commits) == 2
    assert probe_ids(probe) == list(range(1, 51))


def test_a_failing_write_does_not_fail_or_leak_into_its_neighbours(probe: Engine) -> None:
    with probe.begin() as connection:
        connection.execute(PROBE.insert().values(id=5))
    writer = ThreadCommitter(probe)
    gate, entered = threading.Event(), threading.Event()

    def writes_then_raises(connection: Connection) -> None:
        connection.execute(PROBE.insert().values(id=100))
        raise ValueError("application error after writing")

    async def scenario() -> list[Any]:
        writer.start()
        first = asyncio.ensure_future(writer.run(blocking_op(gate, entered)))
        await wait_until_set(entered)
        ops = [probe_insert(i) for i in range(1, 5)] + [
            probe_insert(5),
            writes_then_raises,
            probe_insert(6),
        ]
        batch = [asyncio.ensure_future(writer.run(op)) for op in ops]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(first, *batch, return_exceptions=True)

    try:
        results = asyncio.run(scenario())
    finally:
        writer.stop()
    assert results[:5] == ["unblocked", 1, 2, 3, 4]
    assert isinstance(results[5], IntegrityError)  # id 5 exists: a database error
    assert isinstance(results[6], ValueError)
    assert results[7] == 6
    assert probe_ids(probe) == [1, 2, 3, 4, 5, 6]  # nothing of the raising op, 100, was kept


def test_stop_commits_what_is_queued_then_refuses(probe: Engine) -> None:
    writer = ThreadCommitter(probe)
    gate, entered = threading.Event(), threading.Event()

    async def scenario() -> list[Any]:
        writer.start()
        first = asyncio.ensure_future(writer.run(blocking_op(gate, entered)))
        await wait_until_set(entered)
        queued = [asyncio.ensure_future(writer.run(probe_insert(i))) for i in (1, 2, 3)]
        await asyncio.sleep(0.01)
        stopper = threading.Thread(target=writer.stop)
        stopper.start()
        await asyncio.sleep(0.05)
        with pytest.raises(WriterStopped):
            await writer.run(probe_insert(4))
        gate.set()
        results = await asyncio.gather(first, *queued)
        await asyncio.to_thread(stopper.join, 10)
        return results

    assert asyncio.run(scenario()) == ["unblocked", 1, 2, 3]
    assert probe_ids(probe) == [1, 2, 3]
    assert not writer.running


def test_waiters_are_released_when_the_writer_is_stuck_at_stop(
    probe: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_commit, "STOP_TIMEOUT_SECONDS", 0.1)
    writer = ThreadCommitter(probe)
    gate, entered = threading.Event(), threading.Event()

    async def scenario() -> list[Any]:
        writer.start()
        first = asyncio.ensure_future(writer.run(blocking_op(gate, entered)))
        await wait_until_set(entered)
        queued = [asyncio.ensure_future(writer.run(probe_insert(i))) for i in (1, 2)]
        await asyncio.sleep(0.01)
        await asyncio.to_thread(writer.stop)  # gives up waiting after 0.1 s
        stranded = await asyncio.wait_for(asyncio.gather(*queued, return_exceptions=True), 5)
        gate.set()
        return [await first, *stranded]

    try:
        results = asyncio.run(scenario())
    finally:
        gate.set()
        # Stuck past the stop timeout, the thread ends once free: wait for it to close its
        # connection, or the fixture's dispose would leave it to the garbage collector.
        if writer._thread is not None:
            writer._thread.join(timeout=10)
    assert results[0] == "unblocked"
    assert all(isinstance(result, WriterStopped) for result in results[1:])


def test_run_before_start_is_refused(probe: Engine) -> None:
    writer = ThreadCommitter(probe)

    async def scenario() -> None:
        with pytest.raises(WriterStopped):
            await writer.run(probe_insert(1))

    asyncio.run(scenario())


def test_a_failing_hook_does_not_kill_the_writer(
    probe: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_hook(_size: int) -> None:
        raise RuntimeError("metrics backend down")

    writer = ThreadCommitter(probe, on_batch=broken_hook)

    async def scenario() -> list[int]:
        writer.start()
        return [await writer.run(probe_insert(1)), await writer.run(probe_insert(2))]

    try:
        assert asyncio.run(scenario()) == [1, 2]
    finally:
        writer.stop()
    assert "hook failed" in caplog.text


def _insert_many(calls: list[list[int]]) -> Callable[[Connection, list[int]], list[int]]:
    def apply_many(connection: Connection, ids: list[int]) -> list[int]:
        calls.append(list(ids))
        connection.execute(PROBE.insert(), [{"id": row_id} for row_id in ids])
        if 13 in ids:
            raise ValueError("13 is refused, after writing")
        return [row_id * 10 for row_id in ids]

    return apply_many


def test_batched_items_are_applied_in_one_call(probe: Engine) -> None:
    calls: list[list[int]] = []
    apply_many = _insert_many(calls)
    writer = ThreadCommitter(probe)
    gate, entered = threading.Event(), threading.Event()

    async def scenario() -> list[Any]:
        writer.start()
        first = asyncio.ensure_future(writer.run(blocking_op(gate, entered)))
        await wait_until_set(entered)
        batched = [asyncio.ensure_future(writer.run_batched(apply_many, i)) for i in range(1, 6)]
        plain = asyncio.ensure_future(writer.run(probe_insert(100)))
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(first, *batched, plain)

    try:
        assert asyncio.run(scenario()) == ["unblocked", 10, 20, 30, 40, 50, 100]
    finally:
        writer.stop()
    assert calls == [[1, 2, 3, 4, 5]]
    assert probe_ids(probe) == [1, 2, 3, 4, 5, 100]


def test_a_failing_batch_call_is_retried_item_by_item(probe: Engine) -> None:
    calls: list[list[int]] = []
    apply_many = _insert_many(calls)
    writer = ThreadCommitter(probe)
    gate, entered = threading.Event(), threading.Event()

    async def scenario() -> list[Any]:
        writer.start()
        first = asyncio.ensure_future(writer.run(blocking_op(gate, entered)))
        await wait_until_set(entered)
        batched = [
            asyncio.ensure_future(writer.run_batched(apply_many, i)) for i in (11, 12, 13, 14)
        ]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(first, *batched, return_exceptions=True)

    try:
        results = asyncio.run(scenario())
    finally:
        writer.stop()
    assert results[:3] == ["unblocked", 110, 120] and results[4] == 140
    assert isinstance(results[3], ValueError)
    assert calls == [[11, 12, 13, 14], [11], [12], [13], [14]]
    assert probe_ids(probe) == [11, 12, 14]  # 13's rows were rolled back with its transaction


@pytest.mark.postgres
def test_the_writer_reconnects_after_its_connection_is_killed(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    PROBE.create(engine)
    writer = ThreadCommitter(engine)

    def kill_other_sessions() -> None:
        with engine.connect() as connection:
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )

    async def scenario() -> list[int]:
        writer.start()
        first = await writer.run(probe_insert(1))
        await asyncio.to_thread(kill_other_sessions)  # the writer's held connection dies
        return [first, await writer.run(probe_insert(2)), await writer.run(probe_insert(3))]

    try:
        assert asyncio.run(scenario()) == [1, 2, 3]
        assert probe_ids(engine) == [1, 2, 3]
    finally:
        writer.stop()
        engine.dispose()

"""The three group committers behind one factory: each database and runtime gets its writer,
and every writer applies plain, batched and phased writes, replaying a failed batch alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from receiver.http.problems import receiver_error_response
from receiver.writer.auto import committer_for
from receiver.writer.group_commit import GroupCommitter, WriterStopped
from receiver.writer.inline_committer import InlineCommitter
from receiver.writer.loop_committer import LoopCommitter
from receiver.writer.thread_committer import ThreadCommitter
from tests.receiver.group_commit_support import PROBE, probe_ids, probe_insert


def test_each_database_and_runtime_gets_its_writer(engine: Engine) -> None:
    expected = LoopCommitter if engine.dialect.name == "sqlite" else ThreadCommitter
    assert type(committer_for(engine)) is expected
    assert type(committer_for(engine, serverless=True)) is InlineCommitter


def _insert_all(connection: Connection, ids: list[int]) -> Sequence[int]:
    connection.execute(PROBE.insert(), [{"id": row_id} for row_id in ids])
    return ids


class _ProbePhases:
    """`_insert_all` in three phases, as vlmhooks/store/batch.py splits a batch."""

    def __init__(self, ids: list[int], _dialect: str) -> None:
        self.ids = ids
        self.payload_bytes = 0

    def read(self, _connection: Connection) -> None:
        pass

    def plan(self) -> None:
        pass

    def write(self, connection: Connection) -> Sequence[int]:
        return _insert_all(connection, self.ids)


@pytest.mark.parametrize("serverless", [False, True])
def test_every_writer_applies_each_kind_of_write(probe: Engine, serverless: bool) -> None:
    sizes: list[int] = []
    writer = committer_for(probe, serverless=serverless, on_batch=sizes.append)

    async def scenario() -> list[Any]:
        writer.start()
        results = await asyncio.gather(
            writer.run(probe_insert(1)),
            writer.run_batched(_insert_all, 2),
            writer.run_batched(_insert_all, 3, phases=_ProbePhases),
            writer.run(probe_insert(1)),  # a duplicate key: fails alone
            writer.run_batched(_insert_all, 4, phases=_ProbePhases),
            return_exceptions=True,
        )
        await writer.drain()
        return list(results)

    try:
        results = asyncio.run(scenario())
    finally:
        writer.stop()
    assert results[:3] == [1, 2, 3] and results[4] == 4
    assert isinstance(results[3], IntegrityError)
    assert probe_ids(probe) == [1, 2, 3, 4]
    # Every write was committed in some batch, the failed one included (replayed alone).
    assert sum(sizes) == 5


@pytest.mark.parametrize("serverless", [False, True])
def test_a_stopped_writer_refuses_writes(probe: Engine, serverless: bool) -> None:
    writer: GroupCommitter = committer_for(probe, serverless=serverless)
    writer.start()
    writer.stop()

    async def scenario() -> None:
        with pytest.raises(WriterStopped):
            await writer.run(probe_insert(1))

    asyncio.run(scenario())
    assert not writer.running and probe_ids(probe) == []


def test_a_stopped_writer_is_a_503_to_retry_not_a_500() -> None:
    # Routes that write through the committer (replay, dead-letter retry) let it propagate.
    response = receiver_error_response(WriterStopped("the writer is not running"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"] == "application/problem+json"

"""PostgreSQL's write locks: a batch locks its own rows' keys, and the event feed only from
its event rows to the COMMIT (ARCHITECTURE.md, "The write batch").

Two transactions on real connections, one driven from a thread; "blocked" is shown by a
write still unfinished while the other transaction holds what it needs, and finishing once
that transaction ends.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from receiver.writer.thread_committer import ThreadCommitter
from tests.receiver.callback_harness import prediction_body
from tests.receiver.group_commit_support import PROBE, blocking_op, probe_insert, wait_until_set
from vlmhooks.ingest.prediction import validate_prediction
from vlmhooks.store.batch import PredictionBatch, apply_prediction_writes
from vlmhooks.store.db import make_engine
from vlmhooks.store.records import DeliveryRecord, IngestOutcome, PredictionWrite
from vlmhooks.store.tables import EVENT

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
# Long enough for a write that is not blocked to finish many times over on this machine.
BLOCKED_FOR_SECONDS = 0.5
FINISH_SECONDS = 10.0


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url, pool_size=3)
    yield engine
    engine.dispose()


def _write(prediction_id: str, status: str = "completed", submission_id: str | None = None) -> Any:
    body = prediction_body(status, prediction_id=prediction_id)
    return PredictionWrite(
        prediction=validate_prediction(body),
        submission_id=submission_id,
        source="callback",
        received_at=NOW,
        delivery=DeliveryRecord(body_sha256="0" * 64, body=b"{}"),
    )


def _in_thread(engine: Engine, writes: list[PredictionWrite]) -> Future[list[Any]]:
    """`writes` applied and committed by another connection, from a thread."""

    def run() -> list[Any]:
        with engine.begin() as connection:
            return list(apply_prediction_writes(connection, writes))

    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(run)
    pool.shutdown(wait=False)
    return future


def _open_batch(connection: Connection, writes: list[PredictionWrite]) -> PredictionBatch:
    batch = PredictionBatch(writes, dialect="postgresql")
    batch.read(connection)
    batch.plan()
    return batch


def _seqs(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(EVENT.c.prediction_id, EVENT.c.seq)).all()
    return {prediction_id: seq for prediction_id, seq in rows}


def test_batches_on_other_rows_commit_while_one_has_read_and_planned(pg: Engine) -> None:
    """The lock a batch holds from its read is its own rows' keys: a batch of another
    process on other rows reads, writes its events and commits meanwhile."""
    with pg.connect() as connection, connection.begin():
        _open_batch(connection, [_write("p_a")])  # holds p:p_a until the end of the block
        other = _in_thread(pg, [_write("p_b")])
        (outcome,) = other.result(timeout=FINISH_SECONDS)
    assert isinstance(outcome, IngestOutcome) and outcome.verdict == "stored"


def test_a_batch_on_the_same_row_waits_and_then_plans_on_what_committed(pg: Engine) -> None:
    with pg.connect() as connection:
        transaction = connection.begin()
        first = _open_batch(connection, [_write("p_same", "running")])
        second = _in_thread(pg, [_write("p_same", "completed")])
        with pytest.raises(TimeoutError):
            second.result(timeout=BLOCKED_FOR_SECONDS)  # waiting for p:p_same
        first.write(connection)
        transaction.commit()
    (outcome,) = second.result(timeout=FINISH_SECONDS)
    # Planned against the committed running row: an update, not a first insert (which
    # would have diverged from the upsert's RETURNING and failed).
    assert isinstance(outcome, IngestOutcome) and outcome.verdict == "updated"


def test_event_rows_are_numbered_in_commit_order(pg: Engine) -> None:
    """Once a batch has written its events it holds the feed's lock to its COMMIT: a later
    batch's events wait, so they get the higher seq and commit after (an SSE reader that
    resumes after a seq never skips a row committed later with a lower one)."""
    with pg.connect() as connection:
        transaction = connection.begin()
        _open_batch(connection, [_write("p_first")]).write(connection)
        later = _in_thread(pg, [_write("p_later")])
        with pytest.raises(TimeoutError):
            later.result(timeout=BLOCKED_FOR_SECONDS)  # waiting for the feed's lock
        assert _seqs(pg) == {}  # nothing committed yet
        transaction.commit()
    later.result(timeout=FINISH_SECONDS)
    seqs = _seqs(pg)
    assert seqs["p_first"] < seqs["p_later"]


def _batch_sizes(engine: Engine, queue: Callable[[ThreadCommitter], list[Any]]) -> list[int]:
    """The sizes of the batches a writer commits for what `queue` enqueues while the
    writer is held busy by a first op."""
    PROBE.create(engine)
    sizes: list[int] = []
    writer = ThreadCommitter(engine, on_batch=sizes.append)
    gate, entered = threading.Event(), threading.Event()

    async def scenario() -> list[Any]:
        writer.start()
        first = asyncio.ensure_future(writer.run(blocking_op(gate, entered)))
        await wait_until_set(entered)
        queued = [asyncio.ensure_future(write) for write in queue(writer)]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(first, *queued)

    try:
        results = asyncio.run(scenario())
    finally:
        writer.stop()
    assert results[0] == "unblocked"
    return sizes


def test_an_op_run_alone_commits_apart_on_postgresql(pg: Engine) -> None:
    """`run(op, alone=True)` (a replay, which writes predictions) never shares a
    transaction: its key locks must come before any feed lock in its transaction. Other
    ops take no lock and still share the batched items' transaction."""

    def insert_all(connection: Connection, items: list[int]) -> list[int]:
        return [probe_insert(item)(connection) for item in items]

    sizes = _batch_sizes(
        pg,
        lambda writer: [
            writer.run(probe_insert(1)),
            writer.run(probe_insert(2), alone=True),
            writer.run(probe_insert(3)),
            writer.run_batched(insert_all, 4),
        ],
    )
    # One batch of four: the op alone first, then the other three together.
    assert sizes == [1, 1, 3]


def test_postgresql_batches_stay_small_enough_for_the_lock_table(pg: Engine) -> None:
    """Every key a batch writes holds an advisory lock until commit, in the lock table all
    connections share: a PostgreSQL batch takes at most 128 writes (SQLite's, 512)."""
    sizes = _batch_sizes(pg, lambda writer: [writer.run(probe_insert(i)) for i in range(200)])
    assert sizes == [1, 128, 72]

"""What the group committer tests write: one-column probe rows."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

PROBE = sa.Table("gc_probe", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))


def probe_insert(row_id: int, threads: list[str] | None = None) -> Callable[[Connection], int]:
    """A write that inserts `row_id`, noting in `threads` (if given) the thread it ran on."""

    def op(connection: Connection) -> int:
        if threads is not None:
            threads.append(threading.current_thread().name)
        connection.execute(PROBE.insert().values(id=row_id))
        return row_id

    return op


def blocking_op(gate: threading.Event, entered: threading.Event) -> Callable[[Connection], str]:
    """A write that holds the writer (sets `entered`, then waits for `gate`), so what is
    queued meanwhile forms the next batch."""

    def op(_connection: Connection) -> str:
        entered.set()
        assert gate.wait(10)
        return "unblocked"

    return op


async def wait_until_set(event: threading.Event) -> None:
    """Until the writer has reached `blocking_op` (5 s at most)."""
    for _ in range(500):
        if event.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the writer never reached the blocking op")


def probe_ids(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return [row_id for (row_id,) in connection.execute(sa.select(PROBE.c.id).order_by("id"))]

"""What the group committer tests write: one-column probe rows."""

from __future__ import annotations

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


def probe_ids(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return [row_id for (row_id,) in connection.execute(sa.select(PROBE.c.id).order_by("id"))]

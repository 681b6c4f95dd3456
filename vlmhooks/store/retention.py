"""Delivery retention: how long audit rows (and their raw bodies) are kept, and pruning them in
small transactions. Predictions are never pruned: they are the data, deliveries its audit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vlmhooks.store.tables import DELIVERY

__all__ = ["DEFAULT_PRUNE_BATCH", "prune_deliveries", "prune_delivery_batch"]

# Small enough that each DELETE holds its locks (SQLite's one writer, PostgreSQL's row locks)
# for milliseconds, so callbacks queued behind it barely notice.
DEFAULT_PRUNE_BATCH = 500


def prune_delivery_batch(
    connection: sa.Connection, cutoff: datetime, *, batch: int = DEFAULT_PRUNE_BATCH
) -> int:
    """Delete up to `batch` deliveries received before `cutoff`, by primary key; the count.

    Runs in the caller's transaction (the group committer's in `serve`). Oldest ids first:
    ids grow with arrival, so the rows to delete sit at the start of the primary key.
    """
    ids = list(
        connection.execute(
            sa.select(DELIVERY.c.id)
            .where(DELIVERY.c.received_at < cutoff)
            .order_by(DELIVERY.c.id)
            .limit(batch)
        ).scalars()
    )
    if not ids:
        return 0
    connection.execute(DELIVERY.delete().where(DELIVERY.c.id.in_(ids)))
    return len(ids)


def prune_deliveries(
    engine: Engine,
    cutoff: datetime,
    *,
    batch: int = DEFAULT_PRUNE_BATCH,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Delete every delivery received before `cutoff`, one short transaction per batch."""
    total = 0
    while True:
        with engine.begin() as connection:
            deleted = prune_delivery_batch(connection, cutoff, batch=batch)
        total += deleted
        if on_batch is not None and deleted:
            on_batch(deleted)
        if deleted < batch:
            return total

"""Periodic delivery pruning inside `serve`, when `VLMHOOKS_DELIVERY_RETENTION` is set.

Each batch is one write through the group committer, so pruning queues behind callbacks
like any other write and never holds the database for more than one small DELETE.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from receiver.writer.group_commit import GroupCommitter, WriterStopped
from vlmhooks.store.retention import DEFAULT_PRUNE_BATCH, prune_delivery_batch
from vlmhooks.tasks import cancel_and_wait

__all__ = ["PRUNE_INTERVAL_SECONDS", "DeliveryPruner"]

# Retention is counted in days; an hourly pass keeps the log within an hour of it.
PRUNE_INTERVAL_SECONDS = 3600.0
log = logging.getLogger("vlmhooks.pruning")


class DeliveryPruner:
    """Deletes deliveries older than `retention`: once at start, then every interval."""

    def __init__(
        self,
        writer: GroupCommitter,
        retention: timedelta,
        *,
        clock: Callable[[], float],
        interval: float = PRUNE_INTERVAL_SECONDS,
        batch: int = DEFAULT_PRUNE_BATCH,
    ) -> None:
        self._writer = writer
        self._retention = retention
        self._clock = clock
        self._interval = interval
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="vlmhooks-pruner")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def prune_once(self) -> int:
        """One pass: batches until none is full; the number of deliveries deleted."""
        cutoff = datetime.fromtimestamp(self._clock(), UTC) - self._retention
        total = 0
        while True:
            deleted = await self._writer.run(
                lambda connection: prune_delivery_batch(connection, cutoff, batch=self._batch)
            )
            total += deleted
            if deleted < self._batch:
                return total

    async def _run(self) -> None:
        while True:
            try:
                deleted = await self.prune_once()
            except WriterStopped:
                return
            except Exception:
                # A failed pass (database restarting) is retried at the next interval.
                log.exception("pruning deliveries failed")
            else:
                if deleted:
                    log.info("pruned %d deliveries older than %s", deleted, self._retention)
            await asyncio.sleep(self._interval)

"""Group commit: one writer thread commits every queued write in a single transaction.

Each request awaits its own future, resolved only after the batch's COMMIT returns, so a
2xx still means "durable"; but N concurrent requests share one fsync instead of paying N.
A write that fails with a database error is isolated by replaying the batch one write
per transaction, so one bad row never fails its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from receiver.store import begin_write_batch, end_write_batch

T = TypeVar("T")
WriteOp = Callable[[Connection], Any]

DEFAULT_MAX_BATCH = 512
log = logging.getLogger("vlmhooks.group_commit")


class WriterStopped(RuntimeError):
    """The committer is shut down; the write was not applied."""


@dataclass
class _Pending(Generic[T]):
    op: Callable[[Connection], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop
    result: Any = None
    error: BaseException | None = None


_STOP = object()


class GroupCommitter:
    """Serializes this process's writes through one connection, committing in batches."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        on_batch: Callable[[int], None] | None = None,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._after_commit = after_commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="vlmhooks-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish what is queued, then stop the thread."""
        if self._thread is None or self._stopped:
            return
        self._stopped = True
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    async def run(self, op: Callable[[Connection], T]) -> T:
        """Apply `op` in the next batch and return its result once committed."""
        if self._stopped:
            raise WriterStopped("the writer is stopped")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Pending(op, future, loop))
        return await future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[_Pending[Any]] = [first]
            stop_after = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop_after = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop_after:
                return

    def _commit(self, batch: list[_Pending[Any]]) -> None:
        try:
            self._apply_together(batch)
        except SQLAlchemyError:
            log.warning("batch of %d failed; retrying each write alone", len(batch), exc_info=True)
            for pending in batch:
                pending.result, pending.error = None, None
                try:
                    self._apply_together([pending])
                except SQLAlchemyError as exc:
                    pending.error = exc
        except BaseException as exc:  # every waiter must be released
            for pending in batch:
                pending.error = exc
        if self._on_batch is not None:
            self._on_batch(len(batch))
        if self._after_commit is not None:
            self._after_commit()
        for pending in batch:
            pending.loop.call_soon_threadsafe(_settle, pending)

    def _apply_together(self, batch: list[_Pending[Any]]) -> None:
        with self._engine.begin() as connection:
            begin_write_batch(connection)
            for pending in batch:
                try:
                    pending.result = pending.op(connection)
                except SQLAlchemyError:
                    raise
                except Exception as exc:  # an application error is per write
                    pending.error = exc
            end_write_batch(connection, wrote_events=True)


def _settle(pending: _Pending[Any]) -> None:
    if pending.future.done():  # the request was cancelled (client went away)
        return
    if pending.error is not None:
        pending.future.set_exception(pending.error)
    else:
        pending.future.set_result(pending.result)

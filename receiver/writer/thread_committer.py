"""The writer thread: one thread takes every write queued meanwhile and commits it as a batch.

The PostgreSQL writer: there a batch's statements and COMMIT are network round trips, which
the thread waits for without the GIL, and several processes write at once, so each op that
writes predictions commits in a transaction of its own (`_transactions`).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from typing_extensions import Unpack

from receiver.writer.group_commit import (
    CommitterOptions,
    GroupCommitter,
    WriterStopped,
    fail_unsettled,
)
from receiver.writer.pending_writes import PendingWrite, PlainWrite, settle_all

__all__ = ["ThreadCommitter"]

T = TypeVar("T")
log = logging.getLogger("vlmhooks.group_commit")
_STOP = object()


class ThreadCommitter(GroupCommitter):
    """Batches form in a queue; a thread of its own applies and commits them."""

    def __init__(self, engine: Engine, **options: Unpack[CommitterOptions]) -> None:
        super().__init__(engine, **options)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def _started(self) -> None:
        self._thread = threading.Thread(target=self._run, name="vlmhooks-writer", daemon=True)
        self._thread.start()

    def _stopping(self) -> None:
        self._queue.put(_STOP)  # under the lock: nothing is queued behind it

    def _stopped(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        self._release_queued()
        if self._thread is not None and self._thread.is_alive():
            # Still in a batch past the timeout: the stop marker went with the writes just
            # released, so queue it again. Once free, the thread ends and closes its
            # connection instead of waiting on the queue forever with it checked out.
            self._queue.put(_STOP)

    async def _submit(self, pending: PendingWrite[T]) -> T:
        with self._lock:
            if not self._running:
                raise WriterStopped("the writer is not running")
            self._queue.put(pending)
        self._watch(pending)
        return await pending.future

    def _run(self) -> None:
        try:
            while self._next_batch():
                pass
            self._drop_connection()
        except BaseException:
            log.exception("the writer thread crashed; refusing further writes")
            with self._lock:
                self._running = False
            self._release_queued()
            raise

    def _next_batch(self) -> bool:
        """Commit one batch; False once the stop marker is reached."""
        first = self._queue.get()
        if first is _STOP:
            return False
        batch: list[PendingWrite[Any]] = [first]
        keep_going = True
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                keep_going = False
                break
            batch.append(item)
        try:
            for part in self._transactions(batch):
                self._commit(part)
        except BaseException as exc:
            fail_unsettled(batch, exc)
            settle_all(batch)
            raise
        settle_all(batch)
        return keep_going

    def _transactions(self, batch: list[PendingWrite[Any]]) -> list[list[PendingWrite[Any]]]:
        """The batch as the transactions it commits in: on PostgreSQL each op run `alone`
        in its own, then the rest together. There a transaction takes its rows' key locks
        before the event feed's (ARCHITECTURE.md, "The write batch"): an op that writes
        predictions after anything that took the feed's lock would take its keys after
        it, and two processes doing so could each wait for the other. Other ops take
        neither kind of lock."""
        if self._engine.dialect.name != "postgresql":
            return [batch]
        alone: list[list[PendingWrite[Any]]] = [
            [p] for p in batch if isinstance(p, PlainWrite) and p.alone
        ]
        rest = [p for p in batch if not (isinstance(p, PlainWrite) and p.alone)]
        return [*alone, rest] if rest else alone

    def _release_queued(self) -> None:
        stranded: list[PendingWrite[Any]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                stranded.append(item)
        fail_unsettled(stranded, WriterStopped("the writer stopped before this write was applied"))
        settle_all(stranded)

"""Group commit: one writer thread commits every queued write in a single transaction.

Each request awaits its own future, resolved only after the batch's COMMIT returns, so a
2xx still means "durable"; but N concurrent requests share one fsync instead of paying N.
When any write in a batch fails, the batch is rolled back and replayed one write per
transaction, so one bad write never fails its neighbours nor leaves half its rows behind.

`inline=True` (serverless) has no thread: each write is a batch of one, applied and
committed by the same code before `run` returns, so nothing is left running after it.

`on_loop=True` (SQLite) has no writer thread either: batches form on the event loop.
A phased batch (vlmhooks/store/batch.py) takes BEGIN IMMEDIATE and does its reads on the loop
when no other process holds the write lock (tens of microseconds), plans and runs its
statements on the loop (SQLite's own CPU work, under the lock it holds), and hands only the
COMMIT (the fsync) to a one-thread helper, where it releases the GIL and overlaps with the
next requests; the helper gets the GIL back quickly to return (receiver/writer/gil_handoff.py).
When the lock is taken, BEGIN IMMEDIATE (which may then wait) and the reads run in the
helper; a batch holding plain writes, or carrying over 256 KiB, runs its statements and the
COMMIT there, as before. Statements in the helper waited for the GIL at every step while the
loop served requests: 2.5 ms of an 8.5 ms cycle (ARCHITECTURE.md, "The write batch").
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine, RootTransaction
from sqlalchemy.exc import OperationalError

from receiver.writer.gil_handoff import quick_gil_handoff
from receiver.writer.pending_writes import (
    BatchApply,
    PendingWrite,
    PhasedApply,
    Phases,
    hand_out,
    settle_all,
    settle_group,
)
from vlmhooks.store.db import SQLITE_BUSY_TIMEOUT_MS

__all__ = [
    "DEFAULT_MAX_BATCH",
    "BatchApply",
    "GroupCommitter",
    "PhasedApply",
    "Phases",
    "WriteOp",
    "WriterStopped",
]

T = TypeVar("T")
ItemT = TypeVar("ItemT")
WriteOp = Callable[[Connection], Any]

DEFAULT_MAX_BATCH = 512
# On PostgreSQL a batch holds an advisory lock per key (up to three per write) until
# commit, in the lock table every connection shares (64 x max_connections entries by
# default): smaller batches keep several workers' bursts well inside it.
POSTGRESQL_MAX_BATCH = 128
# A batch carrying more than this (bodies, JSON) runs its statements in the helper thread:
# SQLite copying megabytes would hold up every other request on the loop. A typical batch of
# callbacks carries tens of KiB.
LOOP_WRITE_MAX_BYTES = 256 * 1024
STOP_TIMEOUT_SECONDS = 30.0
log = logging.getLogger("vlmhooks.group_commit")


class WriterStopped(RuntimeError):
    """The committer is not running; the write was not applied."""


_STOP = object()
# A batch's phased items, grouped by the phases that apply them.
_PhasedGroups = list[tuple[Phases, list[PendingWrite[Any]]]]


class GroupCommitter:
    """Serializes this process's writes through one connection, committing in batches."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int | None = None,
        on_batch: Callable[[int], None] | None = None,
        after_commit: Callable[[], None] | None = None,
        inline: bool = False,
        on_loop: bool = False,
    ) -> None:
        self._engine = engine
        self._inline = inline
        self._on_loop = on_loop and not inline
        self._loop_pending: list[PendingWrite[Any]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._io: ThreadPoolExecutor | None = None
        self._inline_lock = threading.Lock()
        if max_batch is None:
            postgresql = engine.dialect.name == "postgresql"
            max_batch = POSTGRESQL_MAX_BATCH if postgresql else DEFAULT_MAX_BATCH
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._after_commit = after_commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # Guards the running flag together with enqueueing, so no write can slip in behind
        # the stop marker and wait forever.
        self._lock = threading.Lock()
        self._running = False
        self._connection: Connection | None = None

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        with self._lock:
            if self._running:
                return
            self._running = True
            if self._inline:
                return
            if self._on_loop:
                self._io = ThreadPoolExecutor(1, thread_name_prefix="vlmhooks-commit")
                return
            self._thread = threading.Thread(target=self._run, name="vlmhooks-writer", daemon=True)
            self._thread.start()

    async def drain(self) -> None:
        """Let the event-loop writer (`on_loop`) commit what is queued; call before `stop`."""
        # Bounded like the thread's join: `stop` then fails whatever is still queued.
        if self._flusher is not None and not self._flusher.done():
            await asyncio.wait({self._flusher}, timeout=STOP_TIMEOUT_SECONDS)

    def stop(self) -> None:
        """Commit what is already queued, then stop; later `run` calls raise `WriterStopped`."""
        with self._lock:
            if not self._running:
                return
            self._running = False
            self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_SECONDS)
        self._release_queued()
        stranded, self._loop_pending = self._loop_pending, []
        for pending in stranded:
            pending.error = WriterStopped("the writer stopped before this write was applied")
        settle_group(stranded)
        if self._io is not None:
            self._io.submit(self._drop_connection).result(timeout=STOP_TIMEOUT_SECONDS)
            self._io.shutdown(wait=True)
            self._io = None

    async def run(self, op: Callable[[Connection], T], *, alone: bool = False) -> T:
        """Apply `op` in the next batch and return its result once committed.

        `op` runs on the writer thread inside the batch's transaction; if it raises, its
        writes are rolled back and the exception is raised here. `alone`: `op` writes
        predictions (`apply_prediction_writes`), so on PostgreSQL it commits in a
        transaction of its own (see `_transactions`).
        """
        loop = asyncio.get_running_loop()
        return await self._enqueue(PendingWrite(op, loop.create_future(), loop, alone=alone))

    async def run_batched(
        self,
        apply_many: Callable[[Connection, list[ItemT]], Sequence[T]],
        item: ItemT,
        *,
        phases: PhasedApply | None = None,
    ) -> T:
        """Apply `item` in the next batch, together with every queued item of `apply_many`.

        `apply_many(connection, items)` returns one result per item, in order; if it raises,
        the batch is rolled back and each item is retried alone. `phases(items, dialect)`,
        the same work split in three, lets the event-loop writer (SQLite) open, plan and write
        on the loop and leave only the COMMIT to its helper thread.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        pending = PendingWrite(None, future, loop, item, apply_many, phases)
        return await self._enqueue(pending)

    async def _enqueue(self, pending: PendingWrite[T]) -> T:
        with self._lock:
            if not self._running:
                raise WriterStopped("the writer is not running")
            if not self._inline and not self._on_loop:
                self._queue.put(pending)
        if self._inline:
            return self._commit_inline(pending)
        if self._on_loop:
            self._loop_pending.append(pending)
            if self._flusher is None or self._flusher.done():
                self._flusher = pending.loop.create_task(self._flush_on_loop())
        return await pending.future

    async def _flush_on_loop(self) -> None:
        """Commit batches on the event loop until nothing is queued (see the module doc)."""
        while self._loop_pending:
            # One turn of the loop first: the requests the last batch answered send their
            # responses before this batch's work on the loop delays them.
            await asyncio.sleep(0)
            if not self._loop_pending:
                break
            batch = self._loop_pending[: self._max_batch]
            del self._loop_pending[: len(batch)]
            try:
                await self._commit_on_loop(batch)
            except BaseException as exc:
                # Never resolve a write as committed when the commit did not finish.
                for pending in batch:
                    pending.error = pending.error or exc
                settle_group(batch)
                if not isinstance(exc, Exception):
                    raise
                log.exception("a batch could not be committed")
                continue
            settle_group(batch)

    async def _commit_on_loop(self, batch: list[PendingWrite[Any]]) -> None:
        assert self._io is not None, "started with on_loop"
        loop = asyncio.get_running_loop()
        connection = self._held_connection()
        dialect = connection.dialect.name
        phased = _phased_groups(batch, dialect)
        rest = [p for p in batch if p.phases is None]
        try:
            # (1) BEGIN IMMEDIATE and the reads: on the loop if the lock is free now, else in
            # the helper, which may wait for another process's batch; (2) the planning, on
            # the loop; (3) below (ARCHITECTURE.md, "The write batch").
            transaction = None if rest else self._open_if_free(connection, phased)
            if transaction is None:
                transaction = await loop.run_in_executor(
                    self._io, self._open_batch, connection, rest, phased
                )
            try:
                for phases, _members in phased:
                    phases.plan()
                # (3) A phased SQLite batch runs its statements on the loop (CPU, under the
                # lock it holds) unless it carries megabytes; the COMMIT is the helper's.
                # Plain ops, other databases and large batches: all of it in the helper.
                on_loop = not rest and dialect == "sqlite"
                if on_loop and _payload_bytes(phased) <= LOOP_WRITE_MAX_BYTES:
                    self._write_batch(connection, transaction, rest, phased)
                    close = transaction.commit
                else:

                    def close() -> None:
                        self._write_batch(connection, transaction, rest, phased)
                        transaction.commit()

                with quick_gil_handoff():
                    await loop.run_in_executor(self._io, close)
            except BaseException:
                if transaction.is_active:
                    await loop.run_in_executor(self._io, transaction.rollback)
                raise
        except Exception:
            self._drop_connection()
            if len(batch) > 1:
                log.info("a batch of %d failed; replaying each write alone", len(batch))
            # The rare path: each write alone, committed where it runs (as the thread does).
            for pending in batch:
                pending.result = None
                try:
                    await loop.run_in_executor(self._io, self._apply_together, [pending])
                except Exception as exc:
                    pending.error = exc
        self._notify(len(batch))

    def _open_if_free(
        self, connection: Connection, phased: _PhasedGroups
    ) -> RootTransaction | None:
        """`_open_batch` on the loop's thread if no process holds the write lock; else None.

        SQLite's busy timeout is off for the attempt, so BEGIN IMMEDIATE fails at once
        instead of blocking the loop; the helper then waits for the lock as usual.
        """
        if connection.dialect.name != "sqlite":
            return None
        driver = connection.connection.driver_connection
        assert driver is not None, "a held connection has its driver connection"
        driver.execute("PRAGMA busy_timeout=0")
        try:
            transaction = _begin_batch(connection)
        except OperationalError as exc:
            # Any SQLITE_BUSY (the primary code, under extended ones such as _RECOVERY).
            if getattr(exc.orig, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            return None
        finally:
            driver.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _read_or_roll_back(connection, transaction, [], phased)
        return transaction

    def _open_batch(
        self,
        connection: Connection,
        rest: list[PendingWrite[Any]],
        phased: _PhasedGroups,
    ) -> RootTransaction:
        transaction = _begin_batch(connection)
        _read_or_roll_back(connection, transaction, rest, phased)
        return transaction

    def _write_batch(
        self,
        connection: Connection,
        transaction: RootTransaction,
        rest: list[PendingWrite[Any]],
        phased: _PhasedGroups,
    ) -> None:
        """The batch's statements (the loop's for a phased SQLite batch, else the helper's);
        on any failure the batch is rolled back whole."""
        try:
            for phases, members in phased:
                hand_out(phases.write(connection), members, phases)
            self._apply_groups(connection, [p for p in rest if p.apply_many is not None])
        except BaseException:
            transaction.rollback()
            raise

    def _commit_inline(self, pending: PendingWrite[T]) -> T:
        # On the caller's thread, blocking its event loop for one commit: a function
        # instance serves one invocation at a time, and a thread hop would buy nothing.
        with self._inline_lock:
            try:
                self._commit([pending])
            finally:
                # Back to the pool: a frozen instance must not sit on a checked-out
                # connection, and the next invocation's checkout pre-pings it.
                self._drop_connection()
        if pending.error is not None:
            raise pending.error
        result: T = pending.result
        return result

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
            # Never resolve a write as committed when the commit did not finish.
            for pending in batch:
                pending.error = pending.error or exc
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
        alone = [[pending] for pending in batch if pending.alone]
        rest = [pending for pending in batch if not pending.alone]
        return [*alone, rest] if rest else alone

    def _commit(self, batch: list[PendingWrite[Any]]) -> None:
        try:
            self._apply_together(batch)
        except Exception:
            if len(batch) > 1:
                log.info("a batch of %d failed; replaying each write alone", len(batch))
            for pending in batch:
                pending.result = None
                try:
                    self._apply_together([pending])
                except Exception as exc:
                    pending.error = exc
        self._notify(len(batch))

    def _apply_together(self, batch: list[PendingWrite[Any]]) -> None:
        connection = self._held_connection()
        try:
            with connection.begin():
                self._apply_items(connection, batch)
        except BaseException:
            # The connection may be broken (server restart, I/O error): the next batch,
            # including the one-by-one replay, starts on a fresh one.
            self._drop_connection()
            raise

    def _held_connection(self) -> Connection:
        # Held for the writer's lifetime: a pool checkout per batch cost a reset-on-return
        # rollback and, on PostgreSQL, a pre-ping round trip.
        if self._connection is None:
            self._connection = self._engine.connect()
        return self._connection

    def _drop_connection(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                log.warning("closing a failed writer connection failed", exc_info=True)
            self._connection = None

    def _apply_items(self, connection: Connection, batch: list[PendingWrite[Any]]) -> None:
        for pending in batch:
            if pending.apply_many is None and pending.op is not None:
                pending.result = pending.op(connection)
        self._apply_groups(connection, [p for p in batch if p.apply_many is not None])

    def _apply_groups(self, connection: Connection, batched: list[PendingWrite[Any]]) -> None:
        groups: dict[BatchApply, list[PendingWrite[Any]]] = {}
        for pending in batched:
            assert pending.apply_many is not None
            groups.setdefault(pending.apply_many, []).append(pending)
        for apply_many, members in groups.items():
            results = apply_many(connection, [member.item for member in members])
            hand_out(results, members, apply_many)

    def _notify(self, size: int) -> None:
        # Hooks are observers: their failure must not kill the writer or its waiters.
        try:
            if self._on_batch is not None:
                self._on_batch(size)
            if self._after_commit is not None:
                self._after_commit()
        except Exception:
            log.exception("a group-commit hook failed")

    def _release_queued(self) -> None:
        stranded: list[PendingWrite[Any]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                item.error = WriterStopped("the writer stopped before this write was applied")
                stranded.append(item)
        settle_all(stranded)


def _phased_groups(batch: list[PendingWrite[Any]], dialect: str) -> _PhasedGroups:
    groups: dict[PhasedApply, list[PendingWrite[Any]]] = {}
    for pending in batch:
        if pending.phases is not None:
            groups.setdefault(pending.phases, []).append(pending)
    return [
        (phases([member.item for member in members], dialect), members)
        for phases, members in groups.items()
    ]


def _read_or_roll_back(
    connection: Connection,
    transaction: RootTransaction,
    rest: list[PendingWrite[Any]],
    phased: _PhasedGroups,
) -> None:
    """The plain ops and the phased batches' reads, in the batch just opened."""
    try:
        for pending in rest:
            if pending.op is not None:
                pending.result = pending.op(connection)
        for phases, _members in phased:
            phases.read(connection)
    except BaseException:
        transaction.rollback()
        raise


def _payload_bytes(phased: _PhasedGroups) -> int:
    return sum(phases.payload_bytes for phases, _members in phased)


def _begin_batch(connection: Connection) -> RootTransaction:
    return connection.begin()

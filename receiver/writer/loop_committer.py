"""The event-loop writer (SQLite): batches form on the loop, and only the COMMIT waits in a thread.

A phased batch (vlmhooks/store/batch.py) takes BEGIN IMMEDIATE and does its reads on the loop
when no other process holds the write lock, plans and runs its statements on the loop
(SQLite's own CPU work, under the lock it holds), and hands only the COMMIT (the fsync) to a
one-thread helper, where it releases the GIL and overlaps with the next requests; the helper
gets the GIL back quickly to return (receiver/writer/gil_handoff.py). When the lock is taken,
BEGIN IMMEDIATE (which may then wait) and the reads run in the helper; a batch holding plain
writes, or carrying over `LOOP_WRITE_MAX_BYTES`, runs its statements and the COMMIT there.
Why, and what each choice saved: ARCHITECTURE.md, "The write batch", and bench/README.md.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine, RootTransaction
from sqlalchemy.exc import OperationalError
from typing_extensions import Unpack

from receiver.writer.gil_handoff import quick_gil_handoff
from receiver.writer.group_commit import (
    STOP_TIMEOUT_SECONDS,
    CommitterOptions,
    GroupCommitter,
    WriterStopped,
    apply_batched,
    batch_commit_span,
    fail_unsettled,
)
from receiver.writer.pending_writes import (
    PendingWrite,
    PhasedApply,
    PhasedWrite,
    Phases,
    PlainWrite,
    hand_out,
    settle_group,
)
from vlmhooks import tracing
from vlmhooks.store.db import SQLITE_BUSY_TIMEOUT_MS

__all__ = ["LOOP_WRITE_MAX_BYTES", "LoopCommitter"]

T = TypeVar("T")
# A batch carrying more than this (bodies, JSON) runs its statements in the helper thread:
# SQLite copying megabytes would hold up every other request on the loop. A typical batch of
# callbacks carries tens of KiB.
LOOP_WRITE_MAX_BYTES = 256 * 1024
log = logging.getLogger("vlmhooks.group_commit")
# A batch's phased writes, grouped by the phases that apply them.
_PhasedGroups = list[tuple[Phases, list[PhasedWrite[Any]]]]


class LoopCommitter(GroupCommitter):
    """Forms and plans batches on the event loop; a one-thread helper COMMITs them."""

    def __init__(self, engine: Engine, **options: Unpack[CommitterOptions]) -> None:
        super().__init__(engine, **options)
        self._pending: list[PendingWrite[Any]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._io: ThreadPoolExecutor | None = None

    def _started(self) -> None:
        self._io = ThreadPoolExecutor(1, thread_name_prefix="vlmhooks-commit")

    async def drain(self) -> None:
        """Let the loop commit what is queued; call before `stop`."""
        # Bounded like the thread's join: `stop` then fails whatever is still queued.
        if self._flusher is not None and not self._flusher.done():
            await asyncio.wait({self._flusher}, timeout=STOP_TIMEOUT_SECONDS)

    def _stopped(self, timeout: float) -> None:
        stranded, self._pending = self._pending, []
        fail_unsettled(stranded, WriterStopped("the writer stopped before this write was applied"))
        settle_group(stranded)
        if self._io is not None:
            self._io.submit(self._drop_connection).result(timeout=timeout)
            self._io.shutdown(wait=True)
            self._io = None

    async def _submit(self, pending: PendingWrite[T]) -> T:
        with self._lock:
            if not self._running:
                raise WriterStopped("the writer is not running")
        self._pending.append(pending)
        if self._flusher is None or self._flusher.done():
            self._flusher = pending.loop.create_task(self._flush_on_loop())
        self._watch(pending)
        return await pending.future

    async def _flush_on_loop(self) -> None:
        """Commit batches on the event loop until nothing is queued."""
        while self._pending:
            # One turn of the loop first: the requests the last batch answered send their
            # responses before this batch's work on the loop delays them.
            await asyncio.sleep(0)
            if not self._pending:
                break
            batch = self._pending[: self._max_batch]
            del self._pending[: len(batch)]
            try:
                if tracing.enabled:
                    with batch_commit_span(len(batch), self._engine.dialect.name):
                        await self._commit_on_loop(batch)
                else:
                    await self._commit_on_loop(batch)
            except BaseException as exc:
                fail_unsettled(batch, exc)
                settle_group(batch)
                if not isinstance(exc, Exception):
                    raise
                log.exception("a batch could not be committed")
                continue
            settle_group(batch)

    async def _commit_on_loop(self, batch: list[PendingWrite[Any]]) -> None:
        assert self._io is not None, "started"
        loop = asyncio.get_running_loop()
        connection = self._held_connection()
        dialect = connection.dialect.name
        phased = _phased_groups(batch, dialect)
        rest = [p for p in batch if not isinstance(p, PhasedWrite)]
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
                    _write_batch(connection, transaction, rest, phased)
                    close = transaction.commit
                else:

                    def close() -> None:
                        _write_batch(connection, transaction, rest, phased)
                        transaction.commit()

                with quick_gil_handoff():
                    await loop.run_in_executor(self._io, close)
            except BaseException:
                if transaction.is_active:
                    await loop.run_in_executor(self._io, transaction.rollback)
                raise
        except Exception:
            self._drop_connection()
            # Committed where it runs, as the other writers' replays are.
            await loop.run_in_executor(self._io, self._replay_alone, batch)
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
            transaction = connection.begin()
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
        self, connection: Connection, rest: list[PendingWrite[Any]], phased: _PhasedGroups
    ) -> RootTransaction:
        transaction = connection.begin()
        _read_or_roll_back(connection, transaction, rest, phased)
        return transaction


def _phased_groups(batch: list[PendingWrite[Any]], dialect: str) -> _PhasedGroups:
    groups: dict[PhasedApply, list[PhasedWrite[Any]]] = {}
    for pending in batch:
        if isinstance(pending, PhasedWrite):
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
            if isinstance(pending, PlainWrite):
                pending.result = pending.op(connection)
        for phases, _members in phased:
            phases.read(connection)
    except BaseException:
        transaction.rollback()
        raise


def _write_batch(
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
        apply_batched(connection, rest)
    except BaseException:
        transaction.rollback()
        raise


def _payload_bytes(phased: _PhasedGroups) -> int:
    return sum(phases.payload_bytes for phases, _members in phased)

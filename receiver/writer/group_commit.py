"""Group commit: what the three writers share. Each commits every queued write in one transaction.

Each request awaits its own future, resolved only after the batch's COMMIT returns, so a
2xx still means "durable"; but N concurrent requests share one fsync instead of paying N.
When any write in a batch fails, the batch is rolled back and replayed one write per
transaction (`_replay_alone`, here once for all three), so one bad write never fails its
neighbours nor leaves half its rows behind.

The writers, one a module, like uvicorn's protocols over their shared part:

- `ThreadCommitter` (thread_committer.py): a writer thread; PostgreSQL, several processes;
- `LoopCommitter` (loop_committer.py): batches form on the event loop, only the COMMIT
  goes to a thread; SQLite (ARCHITECTURE.md, "The write batch");
- `InlineCommitter` (inline_committer.py): each write a batch of one, committed before
  `run` returns; serverless, where nothing may run between invocations.

`committer_for` (auto.py) picks one from the settings.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypedDict, TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from typing_extensions import Unpack

from receiver.writer.deadlines import CommitDeadlines
from receiver.writer.pending_writes import (
    BatchApply,
    BatchedWrite,
    PendingWrite,
    PhasedApply,
    PhasedWrite,
    PlainWrite,
    hand_out,
)
from vlmhooks import tracing
from vlmhooks.errors import StorageUnavailable

__all__ = [
    "DEFAULT_MAX_BATCH",
    "POSTGRESQL_MAX_BATCH",
    "STOP_TIMEOUT_SECONDS",
    "CommitterOptions",
    "GroupCommitter",
    "WriteOp",
    "WriterStopped",
    "apply_batched",
    "batch_commit_span",
    "fail_unsettled",
]

T = TypeVar("T")
ItemT = TypeVar("ItemT")
WriteOp = Callable[[Connection], Any]

DEFAULT_MAX_BATCH = 512
# On PostgreSQL a batch holds an advisory lock per key (up to three per write) until
# commit, in the lock table every connection shares (64 x max_connections entries by
# default): smaller batches keep several workers' bursts well inside it.
POSTGRESQL_MAX_BATCH = 128
STOP_TIMEOUT_SECONDS = 30.0
log = logging.getLogger("vlmhooks.group_commit")


class WriterStopped(StorageUnavailable):
    """The committer is not running (the process is stopping); the write was not applied.
    A route that meets it answers 503 with Retry-After, like any storage failure."""


class CommitterOptions(TypedDict, total=False):
    """What every writer takes beside its engine."""

    max_batch: int | None  # writes per batch; None: by the database (see above)
    on_batch: Callable[[int], None] | None  # after each batch, with its size
    after_commit: Callable[[], None] | None  # after each batch, to wake readers
    # Seconds a waiter waits for its commit before `CommitTimedOut` (VLMHOOKS_DB_TIMEOUT);
    # None: until the commit. The inline writer blocks its caller, so libpq's socket
    # options bound it instead (vlmhooks/store/db.py).
    timeout: float | None


class GroupCommitter(ABC):
    """Serializes this process's writes through one connection, committing in batches."""

    def __init__(self, engine: Engine, **options: Unpack[CommitterOptions]) -> None:
        self._engine = engine
        max_batch = options.get("max_batch")
        if max_batch is None:
            postgresql = engine.dialect.name == "postgresql"
            max_batch = POSTGRESQL_MAX_BATCH if postgresql else DEFAULT_MAX_BATCH
        self._max_batch = max_batch
        self._on_batch = options.get("on_batch")
        self._after_commit = options.get("after_commit")
        self._timeout = options.get("timeout")
        self._deadlines: dict[asyncio.AbstractEventLoop, CommitDeadlines] = {}
        self._last_deadlines: CommitDeadlines | None = None
        # Guards the running flag together with enqueueing, so no write can slip in behind
        # the stop and wait forever.
        self._lock = threading.Lock()
        self._running = False
        self._connection: Connection | None = None
        self._reachable = True  # False while the last attempt to connect failed

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        with self._lock:
            if self._running:
                return
            self._running = True
            self._started()

    async def drain(self) -> None:  # noqa: B027 (optional: a no-op unless the writer needs it)
        """Let a writer on the event loop commit what is queued; call before `stop`."""

    def stop(self) -> None:
        """Commit what is already queued, then stop; later `run` calls raise `WriterStopped`."""
        with self._lock:
            if not self._running:
                return
            self._running = False
            self._stopping()
        self._stopped(STOP_TIMEOUT_SECONDS)

    async def run(self, op: Callable[[Connection], T], *, alone: bool = False) -> T:
        """Apply `op` in the next batch and return its result once committed.

        `op` runs on the writer's connection inside the batch's transaction; if it raises,
        its writes are rolled back and the exception is raised here. `alone`: `op` writes
        predictions (`apply_prediction_writes`), so on PostgreSQL it commits in a
        transaction of its own (ThreadCommitter).
        """
        return await self._submit(PlainWrite(asyncio.get_running_loop(), op, alone=alone))

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
        pending: BatchedWrite[T] = (
            BatchedWrite(loop, apply_many, item)
            if phases is None
            else PhasedWrite(loop, apply_many, item, phases)
        )
        return await self._submit(pending)

    # -- what each writer does its own way -------------------------------------------------

    @abstractmethod
    async def _submit(self, pending: PendingWrite[T]) -> T:
        """Queue `pending` (or apply it) and return its result once committed."""

    def _started(self) -> None:  # noqa: B027 (optional: a no-op unless the writer needs it)
        """Called under the lock as the writer starts."""

    def _stopping(self) -> None:  # noqa: B027 (optional: a no-op unless the writer needs it)
        """Called under the lock as the writer stops: nothing more is queued after it."""

    def _stopped(self, timeout: float) -> None:  # noqa: B027 (optional: a no-op unless the writer needs it)
        """After the stop: finish or fail what is queued, release the connection."""

    def _watch(self, pending: PendingWrite[Any]) -> None:
        """Bound the wait for `pending`'s commit (CommitDeadlines), on its own loop."""
        deadlines = self._last_deadlines
        if deadlines is None or deadlines.loop is not pending.loop:
            if self._timeout is None:
                return
            deadlines = self._deadlines.get(pending.loop)
            if deadlines is None:
                deadlines = self._deadlines[pending.loop] = CommitDeadlines(
                    pending.loop, self._timeout
                )
            self._last_deadlines = deadlines
        deadlines.watch(pending.future)

    # -- shared: a batch in one transaction, and the fallback ------------------------------

    def _commit(self, batch: list[PendingWrite[Any]]) -> None:
        """Apply `batch` in one transaction, else each write alone; then the hooks."""
        if tracing.enabled:
            with batch_commit_span(len(batch), self._engine.dialect.name):
                self._commit_untraced(batch)
        else:
            self._commit_untraced(batch)

    def _commit_untraced(self, batch: list[PendingWrite[Any]]) -> None:
        try:
            self._apply_together(batch)
        except Exception:
            self._replay_alone(batch)
        self._notify(len(batch))

    def _replay_alone(self, batch: list[PendingWrite[Any]]) -> None:
        """The rare path, after a batch failed and was rolled back: each write in a
        transaction of its own, so only the writes that fail alone fail.

        Once a write fails because the database, not the write, failed (its fresh
        connection was lost too, or none could be opened), the rest fail with it: each would
        wait out the connect timeout in turn, stalling the writer for minutes.
        """
        if len(batch) > 1:
            log.info("a batch of %d failed; replaying each write alone", len(batch))
        for index, pending in enumerate(batch):
            pending.result = None
            try:
                self._apply_together([pending])
            except Exception as exc:
                pending.error = exc
                if self._database_lost(exc):
                    fail_unsettled(batch[index + 1 :], exc)
                    return

    def _database_lost(self, exc: BaseException) -> bool:
        """`exc` came from the database going away (SQLAlchemy invalidated the connection),
        or from failing to connect at all."""
        if not isinstance(exc, DBAPIError):
            return False
        return bool(exc.connection_invalidated) or not self._reachable

    def _apply_together(self, batch: list[PendingWrite[Any]]) -> None:
        connection = self._held_connection()
        try:
            with connection.begin():
                for pending in batch:
                    if isinstance(pending, PlainWrite):
                        pending.result = pending.op(connection)
                apply_batched(connection, batch)
        except BaseException:
            # The connection may be broken (server restart, I/O error): the next batch,
            # including the one-by-one replay, starts on a fresh one.
            self._drop_connection()
            raise

    def _held_connection(self) -> Connection:
        # Held for the writer's lifetime: a pool checkout per batch cost a reset-on-return
        # rollback and, on PostgreSQL, a pre-ping round trip.
        if self._connection is None:
            self._reachable = False
            self._connection = self._engine.connect()
            self._reachable = True
        return self._connection

    def _drop_connection(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                log.warning("closing a failed writer connection failed", exc_info=True)
            self._connection = None

    def _notify(self, size: int) -> None:
        # Hooks are observers: their failure must not kill the writer or its waiters.
        try:
            if self._on_batch is not None:
                self._on_batch(size)
            if self._after_commit is not None:
                self._after_commit()
        except Exception:
            log.exception("a group-commit hook failed")


@contextmanager
def batch_commit_span(size: int, dialect: str) -> Iterator[None]:
    """The span of one batch's transaction, when tracing is on: a root span, since the batch
    serves as many callbacks as it holds, whichever request's context is current."""
    attributes: dict[str, str | int] = {"vlmhooks.batch.size": size, "db.system.name": dialect}
    with tracing.start_span("vlmhooks.commit", root=True, attributes=attributes):
        yield


def apply_batched(connection: Connection, batch: Sequence[PendingWrite[Any]]) -> None:
    """The batched writes of `batch` (phased ones included, applied whole): one
    `apply_many` call for each of its functions, over all its items."""
    groups: dict[BatchApply, list[BatchedWrite[Any]]] = {}
    for pending in batch:
        if isinstance(pending, BatchedWrite):
            groups.setdefault(pending.apply_many, []).append(pending)
    for apply_many, members in groups.items():
        results = apply_many(connection, [member.item for member in members])
        hand_out(results, members, apply_many)


def fail_unsettled(batch: Sequence[PendingWrite[Any]], error: BaseException) -> None:
    """Give `error` to each write not already failed: never resolve a write as committed
    when its commit did not finish."""
    for pending in batch:
        pending.error = pending.error or error

"""The queued writes of a group committer, one type per kind, and how callers hear the outcome.

- `PlainWrite`: an op run on the batch's connection (`GroupCommitter.run`);
- `BatchedWrite`: an item applied with every queued item of the same `apply_many`, one
  statement per step for all of them (`run_batched`);
- `PhasedWrite`: a batched write whose work also comes in three phases (read, plan, write:
  vlmhooks/store/batch.py), so the event-loop writer can leave only the COMMIT to a thread.

A write is queued on whichever event loop its request runs on, and settled there: the
future is resolved on its own loop, one thread-safe hop per loop and batch, never per write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.engine import Connection

__all__ = [
    "BatchApply",
    "BatchedWrite",
    "PendingWrite",
    "PhasedApply",
    "PhasedWrite",
    "Phases",
    "PlainWrite",
    "hand_out",
    "settle_all",
    "settle_group",
]

T = TypeVar("T")
# Applies many queued items in one call: one statement per step for the whole batch.
BatchApply = Callable[[Connection, list[Any]], Sequence[Any]]


class Phases(Protocol):
    """A batch split in three (vlmhooks/store/batch.py). `payload_bytes`, known once planned, is
    what `write` will hand the database: the committer keeps a large batch's statements
    off the event loop."""

    @property
    def payload_bytes(self) -> int: ...

    def read(self, connection: Connection) -> None: ...
    def plan(self) -> None: ...
    def write(self, connection: Connection) -> Sequence[Any]: ...


# Builds the phases of one batch from its items (`GroupCommitter.run_batched(phases=)`).
PhasedApply = Callable[[list[Any], str], Phases]


class PendingWrite(Generic[T]):
    """A queued write: its result or error, handed to `future` on `loop` once the batch
    has settled."""

    __slots__ = ("error", "future", "loop", "result")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[T] = loop.create_future()
        self.result: Any = None
        self.error: BaseException | None = None


class PlainWrite(PendingWrite[T]):
    """`op(connection)` in the batch's transaction. `alone`: it writes predictions, so on
    PostgreSQL it commits in a transaction of its own (ThreadCommitter)."""

    __slots__ = ("alone", "op")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, op: Callable[[Connection], T], *, alone: bool
    ) -> None:
        # Each kind sets every field itself: one call per write on the hot path, not a chain.
        self.loop, self.future, self.result, self.error = loop, loop.create_future(), None, None
        self.op = op
        self.alone = alone


class BatchedWrite(PendingWrite[T]):
    """`item`, applied by `apply_many` together with the batch's other items of it."""

    __slots__ = ("apply_many", "item")

    def __init__(self, loop: asyncio.AbstractEventLoop, apply_many: BatchApply, item: Any) -> None:
        self.loop, self.future, self.result, self.error = loop, loop.create_future(), None, None
        self.apply_many = apply_many
        self.item = item


class PhasedWrite(BatchedWrite[T]):
    """A batched write that `phases` can also apply in three steps; `apply_many` remains
    its way to be applied whole (in a thread, or replayed alone)."""

    __slots__ = ("phases",)

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        apply_many: BatchApply,
        item: Any,
        phases: PhasedApply,
    ) -> None:
        self.loop, self.future, self.result, self.error = loop, loop.create_future(), None, None
        self.apply_many, self.item, self.phases = apply_many, item, phases


def hand_out(results: Sequence[Any], members: Sequence[PendingWrite[Any]], source: object) -> None:
    if len(results) != len(members):
        raise RuntimeError(f"{source!r} returned {len(results)} results for {len(members)}")
    for member, result in zip(members, results, strict=True):
        member.result = result


def settle_all(batch: list[PendingWrite[Any]]) -> None:
    """Resolve the futures: one thread-safe hop per event loop, not one per write."""
    by_loop: dict[asyncio.AbstractEventLoop, list[PendingWrite[Any]]] = {}
    for pending in batch:
        by_loop.setdefault(pending.loop, []).append(pending)
    for loop, group in by_loop.items():
        try:
            loop.call_soon_threadsafe(settle_group, group)
        except RuntimeError:  # that loop is closed; nobody is waiting any more
            continue


def settle_group(group: list[PendingWrite[Any]]) -> None:
    for pending in group:
        if pending.future.done():  # the request was cancelled (client went away)
            continue
        if pending.error is not None:
            pending.future.set_exception(pending.error)
        else:
            pending.future.set_result(pending.result)

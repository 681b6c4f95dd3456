"""One queued write of the group committer, and how its caller is told the outcome.

A write is queued on whichever event loop its request runs on, and settled there: the
future is resolved on its own loop, one thread-safe hop per loop and batch, never per write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.engine import Connection

__all__ = [
    "BatchApply",
    "PendingWrite",
    "PhasedApply",
    "Phases",
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


@dataclass
class PendingWrite(Generic[T]):
    """A queued write: a plain `op`, or an `item` for `apply_many` / `phases`; then its
    result or error, handed to `future` on `loop` once the batch has settled."""

    op: Callable[[Connection], T] | None
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop
    item: Any = None
    apply_many: BatchApply | None = None
    phases: PhasedApply | None = None
    alone: bool = False  # a plain op that writes predictions (GroupCommitter.run)
    result: Any = None
    error: BaseException | None = None


def hand_out(results: Sequence[Any], members: list[PendingWrite[Any]], source: object) -> None:
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

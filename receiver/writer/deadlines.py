"""Bounded waits on a commit: a write not committed within VLMHOOKS_DB_TIMEOUT fails its waiter.

One timer per committer and event loop, not one per write: the waiting futures sit in a
queue in the order they came (so in deadline order), settled ones leave it from the front
as new ones arrive, and the timer is set for the oldest unsettled one only.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["CommitDeadlines", "CommitTimedOut"]


class CommitTimedOut(TimeoutError):
    """The write's batch did not commit in time. Its outcome is unknown: it may still commit
    once the database answers, so the caller answers "retry", never "failed"."""


class CommitDeadlines:
    """The deadlines of the writes awaited on one event loop."""

    __slots__ = ("_clock", "_timer", "_waiting", "loop", "timeout")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.loop = loop
        self.timeout = timeout
        # The loop's time, on which the timer is set; a test passes its own and calls `expire`.
        self._clock = clock or loop.time
        self._waiting: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, future: asyncio.Future[Any]) -> None:
        """Fail `future` with `CommitTimedOut` unless it is settled within the timeout."""
        waiting = self._waiting
        # Committed writes leave from the front here, so the queue holds what is in
        # flight and at most a batch already answered, never an old body's result.
        while waiting and waiting[0][1].done():
            waiting.popleft()
        deadline = self._clock() + self.timeout
        waiting.append((deadline, future))
        if self._timer is None:
            self._timer = self.loop.call_at(deadline, self.expire)

    def expire(self) -> None:
        """Fail each waiter whose deadline has passed by the clock; set the timer for the
        next one (the timer's callback)."""
        if self._timer is not None:
            self._timer.cancel()  # called early (a test): the timer is set afresh below
            self._timer = None
        waiting = self._waiting
        now = self._clock()
        while waiting:
            deadline, future = waiting[0]
            if not future.done():
                if deadline > now:
                    self._timer = self.loop.call_at(deadline, self.expire)
                    return
                # The writer settles a done future by skipping it (settle_group): a batch
                # that commits later answers nobody, and breaks nothing.
                future.set_exception(
                    CommitTimedOut(f"the database did not commit within {self.timeout:g} s")
                )
            waiting.popleft()

"""Wake-ups for readers that wait on stored changes (SSE streams, `?wait=`).

A commit in this process wakes waiters at once; other processes' commits arrive through
PostgreSQL LISTEN/NOTIFY, and on SQLite through a short poll interval.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine

DEFAULT_POLL_INTERVAL = 0.5


class EventHub:
    """A generation counter with an async wait; cheap to signal from any thread."""

    def __init__(self, engine: Engine, *, poll_interval: float = DEFAULT_POLL_INTERVAL) -> None:
        self._engine = engine
        self.poll_interval = poll_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self.generation = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()

    async def stop(self) -> None:
        self._wake()

    def notify_committed(self) -> None:
        """Called by the writer thread after each commit."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self.generation += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait_for_change(self, timeout: float) -> None:
        """Return after a change, or after `min(timeout, poll_interval)` so callers re-check."""
        event = self._changed
        if event is None:
            await asyncio.sleep(min(timeout, self.poll_interval))
            return
        try:
            await asyncio.wait_for(event.wait(), timeout=min(timeout, self.poll_interval))
        except TimeoutError:
            return

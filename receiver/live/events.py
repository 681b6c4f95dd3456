"""Wake-ups for readers that wait on stored changes (SSE streams, `?wait=`).

A commit in this process wakes waiters at once; other processes' commits arrive through
PostgreSQL LISTEN/NOTIFY, and on SQLite (or with `listen=False`) through a short poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from sqlalchemy.engine import Engine

from vlmhooks.store.statements import EVENTS_CHANNEL
from vlmhooks.tasks import cancel_and_wait

DEFAULT_POLL_INTERVAL = 0.5
# With LISTEN up, polling is only a safety net against a notification lost in transit.
LISTENING_POLL_INTERVAL = 10.0
DEFAULT_KEEPALIVE_INTERVAL = 15.0
LISTEN_RETRY_INITIAL = 0.2
LISTEN_RETRY_MAX = 5.0
LISTEN_APPLICATION_NAME = "vlmhooks-listen"

log = logging.getLogger("vlmhooks.events")


class EventHub:
    """A generation counter with an async wait; cheap to signal from any thread."""

    def __init__(
        self,
        engine: Engine,
        *,
        poll_interval: float | None = None,
        keepalive_interval: float | None = None,
        listen: bool = True,
    ) -> None:
        self._engine = engine
        # False behind a transaction-mode pooler, where LISTEN cannot work
        # (receiver/server/runtime.py).
        self._listen = listen
        # Defaults are read at construction, not bound as default arguments, so a test can
        # shorten them for the hub the app's lifespan builds.
        self.poll_interval = DEFAULT_POLL_INTERVAL if poll_interval is None else poll_interval
        self.keepalive_interval = (
            DEFAULT_KEEPALIVE_INTERVAL if keepalive_interval is None else keepalive_interval
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._changed: asyncio.Event | None = None
        self._listener: asyncio.Task[None] | None = None
        self.listening = False
        self.generation = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._changed = asyncio.Event()
        if self._listen and self._engine.dialect.name == "postgresql":
            self._listener = asyncio.create_task(self._listen_forever(), name="vlmhooks-listen")

    async def stop(self) -> None:
        if self._listener is not None:
            await cancel_and_wait(self._listener)
            self._listener = None
        self.listening = False
        self._wake()

    def notify_committed(self) -> None:
        """Called by the writer after each commit: its thread, or the loop itself."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            # The event-loop writer (SQLite): no self-pipe write and wake-up per batch.
            loop.call_soon(self._wake)
        else:
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self.generation += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    def ticket(self) -> asyncio.Event | None:
        """Take before reading the database; `wait(ticket)` then misses no later commit."""
        return self._changed

    @property
    def recheck_interval(self) -> float:
        """How long a waiter may sleep before re-reading the database on its own."""
        return LISTENING_POLL_INTERVAL if self.listening else self.poll_interval

    async def wait(self, ticket: asyncio.Event | None, at_most: float) -> None:
        """Return once a change follows `ticket`, or after `min(at_most, recheck_interval)`."""
        delay = max(0.0, min(at_most, self.recheck_interval))
        if ticket is None:
            await asyncio.sleep(delay)
            return
        # `asyncio.timeout`, not `wait_for`: on Python 3.11, `wait_for` swallows a cancel
        # that arrives as the ticket is set, and the fan-out's pump then never stops.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await ticket.wait()

    async def _listen_forever(self) -> None:
        # Imported here: only a listening hub needs psycopg's async API, and SQLite never does.
        import psycopg

        delay = LISTEN_RETRY_INITIAL
        conninfo = self._engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo, autocommit=True, application_name=LISTEN_APPLICATION_NAME
                ) as connection:
                    await connection.execute(f"LISTEN {EVENTS_CHANNEL}")
                    self.listening = True
                    delay = LISTEN_RETRY_INITIAL
                    # Commits made while we were not listening were never announced.
                    self._wake()
                    async for _notify in connection.notifies():
                        self._wake()
            except psycopg.Error as exc:
                log.warning("LISTEN %s lost (%s); retrying in %.1fs", EVENTS_CHANNEL, exc, delay)
            finally:
                self.listening = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, LISTEN_RETRY_MAX)

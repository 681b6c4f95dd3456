"""One reader for every waiter: SSE subscribers and `?wait=` long polls share each event.

Per process, a single pump reads the change feed after each wake-up (receiver/live/events.py),
encodes every event once, and hands the same bytes to every subscriber's bounded buffer
and the event's data to the long polls waiting on that prediction. Waiters cost neither
CPU nor queries while nothing changes; a commit costs one read and one encoding whatever
the number of waiters. A subscriber too slow to drain its buffer is dropped: its stream
ends and the client resumes with `Last-Event-ID` (read from the database, losing nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import deque
from typing import Any

from sqlalchemy.engine import Engine

from receiver.live.events import EventHub
from receiver.live.frames import format_event
from schemas.enums import Status
from vlmhooks.reads.bounded import call_within
from vlmhooks.reads.queries import StoredEvent, events_after, last_event_seq
from vlmhooks.settings import DEFAULT_DB_TIMEOUT_SECONDS, DEFAULT_SSE_BUFFER_BYTES
from vlmhooks.store.db import sqlite_file
from vlmhooks.tasks import cancel_and_wait

__all__ = [
    "DEFAULT_SUBSCRIBER_BUFFER_BYTES",
    "EVENT_BATCH",
    "FanOut",
    "Subscription",
]

EVENT_BATCH = 500
DEFAULT_SUBSCRIBER_BUFFER_BYTES = DEFAULT_SSE_BUFFER_BYTES
SUBSCRIBER_BUFFER_EVENTS = 10_000
VERSION_TRUST_SECONDS = 10.0

log = logging.getLogger("vlmhooks.fanout")


class SqliteChanges:
    """For a SQLite file: a number that changes whenever any connection, in any process,
    commits (`PRAGMA data_version`), read through SQLite on a connection of its own.

    Not from the files themselves (an earlier version read the WAL-index header with
    `open()`): closing a descriptor of SQLite's files drops every POSIX lock this process
    holds on them, SQLite's included, and another process may then rewind or delete a WAL
    still in use here (receiver/writer/wal_checkpoints.py). A failed read counts as a change: the
    pump then reads the feed, and reports what is wrong.
    """

    def __init__(self, database: str) -> None:
        self._database = database
        self._connection: sqlite3.Connection | None = None
        self._failures = 0

    def __call__(self) -> int:
        try:
            if self._connection is None:
                # No busy wait: this runs on the event loop, and a locked file (a recovery
                # in another process) simply counts as a change.
                self._connection = sqlite3.connect(
                    self._database, isolation_level=None, check_same_thread=False, timeout=0
                )
            version: int = self._connection.execute("PRAGMA data_version").fetchone()[0]
            return version
        except sqlite3.Error:
            self.close()
            self._failures += 1
            return -self._failures  # never a version, never the same twice

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def sqlite_changes(engine: Engine) -> SqliteChanges | None:
    """A `SqliteChanges` for the engine's SQLite file; None for PostgreSQL and in-memory."""
    if engine.dialect.name != "sqlite":
        return None
    database = sqlite_file(engine.url.database)
    return None if database is None else SqliteChanges(database)


class Subscription:
    """The frames one SSE stream has not written yet: shared bytes, bounded in total size."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._frames: deque[tuple[int, bytes]] = deque()
        self._queued_bytes = 0
        self._ready = asyncio.Event()
        self.overflowed = False  # dropped: the stream must end, the client resumes
        self.closing = False  # the server is shutting down

    def offer(self, seq: int, frame: bytes) -> None:
        if self.overflowed or self.closing:
            return
        # An empty buffer takes any one event, however large: it is shared, not copied.
        if self._frames and (
            self._queued_bytes + len(frame) > self._max_bytes
            or len(self._frames) >= SUBSCRIBER_BUFFER_EVENTS
        ):
            self.overflowed = True
            self._frames.clear()
            self._queued_bytes = 0
        else:
            self._frames.append((seq, frame))
            self._queued_bytes += len(frame)
        self._ready.set()

    def close(self) -> None:
        self.closing = True
        self._ready.set()

    async def take(self, at_most: float) -> list[tuple[int, bytes]]:
        """Every queued frame, waiting up to `at_most` s for the first; [] on timeout or end."""
        if not self._frames and not (self.overflowed or self.closing):
            # Not `wait_for`, which on 3.11 can swallow a cancel (receiver/live/events.py).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, at_most)):
                    await self._ready.wait()
        self._ready.clear()
        frames = list(self._frames)
        self._frames.clear()
        self._queued_bytes = 0
        return frames


class FanOut:
    def __init__(
        self,
        engine: Engine,
        hub: EventHub,
        *,
        subscriber_buffer_bytes: int = DEFAULT_SUBSCRIBER_BUFFER_BYTES,
        read_timeout: float = DEFAULT_DB_TIMEOUT_SECONDS,
    ) -> None:
        self._engine = engine
        self._read_timeout = read_timeout  # each read's bound (VLMHOOKS_DB_TIMEOUT)
        self._hub = hub
        self._buffer_bytes = subscriber_buffer_bytes
        self._subscriptions: set[Subscription] = set()
        self._waiters: dict[str, set[asyncio.Future[dict[str, Any] | None]]] = {}
        # The last seq handed out. Stale while nobody listens: nothing is read for nobody.
        self._position = 0
        self._stale = True
        # Set when a stream or long poll arrives: the pump sleeps on it while nobody listens.
        self._listener_joined = asyncio.Event()
        self._lock = asyncio.Lock()
        self._pump_task: asyncio.Task[None] | None = None
        self.draining = False
        self.reads = 0  # change-feed reads by the pump (a test and bench/fanout.py look)
        # SQLite has no NOTIFY: other processes' commits are seen by polling. An unchanged
        # data version (see SqliteChanges) means no commit, so no query is needed.
        self._changes = sqlite_changes(engine)
        self._seen_version: int | None = None
        self._read_at = 0.0

    async def start(self) -> None:
        self._pump_task = asyncio.create_task(self._pump(), name="vlmhooks-fanout")

    async def stop(self) -> None:
        self.begin_shutdown()
        if self._pump_task is not None:
            await cancel_and_wait(self._pump_task)
            self._pump_task = None
        if self._changes is not None:
            self._changes.close()

    def begin_shutdown(self) -> None:
        """Every open stream gets its retry hint and every long poll its answer, now."""
        if self.draining:
            return
        self.draining = True
        for subscription in self._subscriptions:
            subscription.close()
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    @property
    def long_polls(self) -> int:
        return sum(len(futures) for futures in self._waiters.values())

    @property
    def listeners(self) -> int:
        return self.subscribers + self.long_polls

    async def subscribe(self) -> Subscription:
        """Register before reading any backlog: events after this point are queued."""
        subscription = Subscription(self._buffer_bytes)
        if self.draining:
            subscription.close()
            return subscription
        await self._catch_up_position()
        self._subscriptions.add(subscription)
        self._listener_joined.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    async def waiter(self, prediction_id: str) -> asyncio.Future[dict[str, Any] | None]:
        """A future for the prediction's next terminal event (its data), None at shutdown.

        Take it before reading the prediction, so a completion committed in between still
        resolves it; `forget` it when done.
        """
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        if self.draining:
            future.set_result(None)
            return future
        await self._catch_up_position()
        self._waiters.setdefault(prediction_id, set()).add(future)
        self._listener_joined.set()
        return future

    def forget(self, prediction_id: str, future: asyncio.Future[dict[str, Any] | None]) -> None:
        futures = self._waiters.get(prediction_id)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del self._waiters[prediction_id]

    async def _catch_up_position(self) -> None:
        # The first listener after a quiet spell: move to the feed's end before anyone
        # relies on the pump, so it never re-reads what nobody was listening to.
        if self._stale:
            async with self._lock:
                if self._stale:
                    if self._changes is not None:
                        self._seen_version = self._changes()
                    self._position = await call_within(
                        self._read_timeout, last_event_seq, self._engine
                    )
                    self._read_at = time.monotonic()
                    self._stale = False

    async def _pump(self) -> None:
        woken = True
        while True:
            if not self.listeners:
                # Nobody to deliver to: sleep until someone arrives, not through every
                # commit (a task step and a timer per batch, for nothing). The arrival has
                # already moved the position to the feed's end (`_catch_up_position`).
                self._stale = True
                self._listener_joined.clear()
                await self._listener_joined.wait()
                woken = True
                continue
            ticket = self._hub.ticket()
            generation = self._hub.generation
            try:
                if woken or self._files_changed():
                    async with self._lock:
                        if not self._stale:
                            await self._deliver_new()
            except Exception:
                # A failed read (database restarting) must not end the feed for good.
                log.warning("could not read the change feed; retrying", exc_info=True)
            await self._hub.wait(ticket, self._hub.recheck_interval)
            # A commit here or a NOTIFY bumps the generation; a bare poll tick does not.
            woken = self._hub.generation != generation

    def _files_changed(self) -> bool:
        if self._changes is None:
            return True  # PostgreSQL: the poll is LISTEN's safety net, rare and cheap
        if time.monotonic() - self._read_at > VERSION_TRUST_SECONDS:
            return True  # a safety net: a version read is cheap, but not the feed itself
        return self._changes() != self._seen_version

    async def _deliver_new(self) -> None:
        if self._changes is not None:
            self._seen_version = self._changes()  # before the read: no commit slips by
        self._read_at = time.monotonic()
        while True:
            batch = await call_within(
                self._read_timeout, events_after, self._engine, self._position, EVENT_BATCH
            )
            self.reads += 1
            for event in batch:
                self._deliver(event)
                if self._subscriptions:
                    # Let the streams write between events: a burst larger than a buffer
                    # should drop only the subscribers that cannot keep up.
                    await asyncio.sleep(0)
            if batch:
                self._position = batch[-1].seq
            if len(batch) < EVENT_BATCH:
                return

    def _deliver(self, event: StoredEvent) -> None:
        if self._subscriptions:
            frame = format_event(event)  # once, for everyone
            for subscription in self._subscriptions:
                subscription.offer(event.seq, frame)
        prediction_id = event.data.get("id")
        futures = self._waiters.get(prediction_id) if isinstance(prediction_id, str) else None
        if futures and Status(event.data["status"]).is_terminal:
            for future in futures:
                if not future.done():
                    future.set_result(event.data)

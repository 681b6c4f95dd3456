"""`GET /v1/events`: the change feed as Server-Sent Events, resumable by `Last-Event-ID`.

The stream reads the database in batches of `seq > last`; `seq` is assigned in commit
order (the event-feed lock, vlmhooks/store/statements.py), so resuming after any id skips
nothing and repeats nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TypeVar

import anyio
from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send
from typing_extensions import TypeVarTuple, Unpack

from receiver.http.params import parse_int
from receiver.live.events import EventHub
from receiver.live.fanout import EVENT_BATCH, FanOut, Subscription
from receiver.live.frames import KEEPALIVE_COMMENT, format_event, reconnect_frame
from receiver.state import receiver_state
from vlmhooks.errors import StorageUnavailable
from vlmhooks.reads.bounded import call_within
from vlmhooks.reads.pagination import MAX_ROW_ID
from vlmhooks.reads.queries import events_after, last_event_seq
from vlmhooks.settings import DEFAULT_DB_TIMEOUT_SECONDS

__all__ = [
    "EventStream",
    "keep_alive_or_wait",
    "resume_position",
    "stream_events",
    "write_chunk",
]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

RECONNECT_MILLISECONDS = 2000
# Sent when the server starts shutting down: reconnect soon (another instance may be up).
SHUTDOWN_RECONNECT_MILLISECONDS = 500
SHUTDOWN_HINT = reconnect_frame(
    SHUTDOWN_RECONNECT_MILLISECONDS, "the server is shutting down; reconnect with Last-Event-ID"
)
# A large event goes out in slices, so a slow client's socket buffer holds one slice,
# not a copy of the whole event per subscriber.
WRITE_SLICE_BYTES = 64 * 1024
LAST_EVENT_ID_HEADER = "last-event-id"
RESUME_QUERY_PARAMS = ("last_event_id", "after")
EVENT_STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-store"),
    # Reverse proxies (nginx) otherwise buffer the stream and hold events back.
    (b"x-accel-buffering", b"no"),
]


def resume_position(request: Request) -> int | None:
    """The last seq the client has, or None for "from now on".

    The header wins over the query: a browser's EventSource reconnects to the same URL
    (which may say `?after=0`) and adds `Last-Event-ID` with what it actually received.
    """
    header = request.headers.get(LAST_EVENT_ID_HEADER)
    if header is not None and header.strip():
        return parse_int("Last-Event-ID", header.strip(), minimum=0, maximum=MAX_ROW_ID)
    for name in RESUME_QUERY_PARAMS:
        raw = request.query_params.get(name)
        if raw is not None:
            return parse_int(name, raw, minimum=0, maximum=MAX_ROW_ID)
    return None


class EventStream:
    """An ASGI response that streams events after `after` until the client goes away.

    With `max_seconds` (serverless, where the platform buffers a response until it ends)
    the stream ends after the first events, or after `max_seconds` without any, and the
    client's EventSource reconnects with `Last-Event-ID`: a long poll in SSE's clothes.
    """

    def __init__(
        self,
        engine: Engine,
        hub: EventHub,
        after: int,
        *,
        fanout: FanOut | None = None,
        max_seconds: float | None = None,
        read_timeout: float = DEFAULT_DB_TIMEOUT_SECONDS,
    ) -> None:
        self.engine = engine
        self.read_timeout = read_timeout  # each read's bound (VLMHOOKS_DB_TIMEOUT)
        self.hub = hub
        self.fanout = fanout
        self.last_seq = after
        self.max_seconds = max_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": EVENT_STREAM_HEADERS})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._cancel_on_disconnect, receive, tasks.cancel_scope)
                # OSError: the client went away mid-write; nothing is left to tell it.
                with contextlib.suppress(OSError):
                    try:
                        if self.fanout is not None:
                            await self._stream_live(send, self.fanout)
                            await _finish(send)
                        else:
                            await self._pump(send)
                            if self.max_seconds is not None:
                                await _finish(send)
                    except StorageUnavailable:
                        # The database failed or stopped answering mid-stream: the stream
                        # ends, and the client reconnects with its last id.
                        await _finish(send)
                tasks.cancel_scope.cancel()
        except asyncio.CancelledError:
            # The server cancels open streams at graceful-shutdown timeout: end the body
            # cleanly so the client sees a finished stream and reconnects with its last id.
            await _finish(send)

    @staticmethod
    async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
        message: Message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()
        scope.cancel()

    async def _read(self, read: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        return await call_within(self.read_timeout, read, *args)

    async def _stream_live(self, send: Send, fanout: FanOut) -> None:
        """The backlog from the database, then the shared live frames; ends when dropped."""
        subscription = await fanout.subscribe()  # first: nothing after the backlog is missed
        try:
            await write_chunk(send, reconnect_frame(RECONNECT_MILLISECONDS))
            await self._write_backlog(send)
            await self._write_live(send, subscription)
        finally:
            fanout.unsubscribe(subscription)

    async def _write_backlog(self, send: Send) -> None:
        while True:
            batch = await self._read(events_after, self.engine, self.last_seq, EVENT_BATCH)
            for event in batch:
                await _write_frame(send, format_event(event))
            if batch:
                self.last_seq = batch[-1].seq
            if len(batch) < EVENT_BATCH:
                return

    async def _write_live(self, send: Send, subscription: Subscription) -> None:
        keepalive = self.hub.keepalive_interval
        while True:
            frames = await subscription.take(keepalive)
            if subscription.closing:
                await write_chunk(send, SHUTDOWN_HINT)
                return
            if subscription.overflowed:
                return  # too slow: the client resumes from its Last-Event-ID
            if not frames:
                await write_chunk(send, KEEPALIVE_COMMENT)
                continue
            fresh = [frame for seq, frame in frames if seq > self.last_seq]
            # (the backlog may already have written the first ones)
            self.last_seq = max(self.last_seq, frames[-1][0])
            if not fresh:
                continue
            if sum(len(frame) for frame in fresh) <= WRITE_SLICE_BYTES:
                # One write for a commit batch's events: a send per event per subscriber
                # was most of what each subscriber cost.
                await write_chunk(send, b"".join(fresh))
            else:
                for frame in fresh:
                    await _write_frame(send, frame)

    async def _pump(self, send: Send) -> None:
        await write_chunk(send, reconnect_frame(RECONNECT_MILLISECONDS))
        quiet_since = time.monotonic()
        ends_at = None if self.max_seconds is None else quiet_since + self.max_seconds
        while True:
            ticket = self.hub.ticket()
            batch = await self._read(events_after, self.engine, self.last_seq, EVENT_BATCH)
            if batch:
                await write_chunk(send, b"".join(format_event(event) for event in batch))
                self.last_seq = batch[-1].seq
                quiet_since = time.monotonic()
                if len(batch) == EVENT_BATCH:
                    continue  # more are waiting; do not sleep between batches
                if ends_at is not None:
                    return  # buffered: every event held back would wait for the end
            if ends_at is not None:
                left = ends_at - time.monotonic()
                if left <= 0:
                    return
                await self.hub.wait(ticket, left)
                continue
            quiet_since = await keep_alive_or_wait(send, self.hub, ticket, quiet_since)


async def keep_alive_or_wait(
    send: Send, hub: EventHub, ticket: asyncio.Event | None, quiet_since: float
) -> float:
    """A keep-alive comment when the stream has been quiet long enough, then wait for the next
    change (or the next keep-alive); the new `quiet_since`."""
    quiet_for = time.monotonic() - quiet_since
    if quiet_for >= hub.keepalive_interval:
        await write_chunk(send, KEEPALIVE_COMMENT)
        quiet_since = time.monotonic()
        quiet_for = 0.0
    await hub.wait(ticket, hub.keepalive_interval - quiet_for)
    return quiet_since


async def write_chunk(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _write_frame(send: Send, frame: bytes) -> None:
    if len(frame) <= WRITE_SLICE_BYTES:
        await write_chunk(send, frame)
        return
    view = memoryview(frame)
    for start in range(0, len(frame), WRITE_SLICE_BYTES):
        await write_chunk(send, bytes(view[start : start + WRITE_SLICE_BYTES]))


async def _finish(send: Send) -> None:
    with contextlib.suppress(OSError):
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def stream_events(request: Request) -> EventStream:
    """Endpoint: validate the resume position (400 before any byte is streamed), then stream."""
    state = receiver_state(request)
    after = resume_position(request)
    timeout = state.settings.db_timeout
    if after is None:
        after = await call_within(timeout, last_event_seq, state.engine)
    if state.serverless:
        # No pump outlives an invocation: the stream reads for itself and ends.
        max_seconds = float(state.settings.max_wait)
        return EventStream(
            state.engine, state.events, after, max_seconds=max_seconds, read_timeout=timeout
        )
    return EventStream(state.engine, state.events, after, fanout=state.fanout, read_timeout=timeout)

"""`GET /v1/events`: the change feed as Server-Sent Events, resumable by `Last-Event-ID`.

The stream reads the database in batches of `seq > last`; `seq` is assigned in commit
order (the event-feed lock, vlmhooks/statements.py), so resuming after any id skips
nothing and repeats nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import anyio
import orjson
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from receiver.events import EventHub
from receiver.params import parse_int
from receiver.state import receiver_state
from vlmhooks.pagination import MAX_ROW_ID
from vlmhooks.reads import StoredEvent, events_after, last_event_seq

EVENT_BATCH = 500
RECONNECT_MILLISECONDS = 2000
KEEPALIVE_COMMENT = b": keep-alive\n\n"
LAST_EVENT_ID_HEADER = "last-event-id"
RESUME_QUERY_PARAMS = ("last_event_id", "after")
EVENT_STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-store"),
    # Reverse proxies (nginx) otherwise buffer the stream and hold events back.
    (b"x-accel-buffering", b"no"),
]


def format_event(event: StoredEvent) -> bytes:
    """One SSE frame; the JSON is single-line, so one `data:` line carries it."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event.seq,
        event.type.encode("utf-8"),
        orjson.dumps(event.data),
    )


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
        self, engine: Engine, hub: EventHub, after: int, *, max_seconds: float | None = None
    ) -> None:
        self.engine = engine
        self.hub = hub
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
                    await self._pump(send)
                    if self.max_seconds is not None:
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

    async def _pump(self, send: Send) -> None:
        await _write(send, b"retry: %d\n\n" % RECONNECT_MILLISECONDS)
        quiet_since = time.monotonic()
        ends_at = None if self.max_seconds is None else quiet_since + self.max_seconds
        while True:
            ticket = self.hub.ticket()
            batch = await run_in_threadpool(events_after, self.engine, self.last_seq, EVENT_BATCH)
            if batch:
                await _write(send, b"".join(format_event(event) for event in batch))
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
            quiet_for = time.monotonic() - quiet_since
            if quiet_for >= self.hub.keepalive_interval:
                await _write(send, KEEPALIVE_COMMENT)
                quiet_since = time.monotonic()
                quiet_for = 0.0
            await self.hub.wait(ticket, self.hub.keepalive_interval - quiet_for)


async def _write(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _finish(send: Send) -> None:
    with contextlib.suppress(OSError):
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def stream_events(request: Request) -> EventStream:
    """Endpoint: validate the resume position (400 before any byte is streamed), then stream."""
    state = receiver_state(request)
    after = resume_position(request)
    if after is None:
        after = await run_in_threadpool(last_event_seq, state.engine)
    max_seconds = float(state.settings.max_wait) if state.serverless else None
    return EventStream(state.engine, state.events, after, max_seconds=max_seconds)

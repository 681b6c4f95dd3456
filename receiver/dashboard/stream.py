"""`GET /dashboard/events`: one stream for the dashboard pages, with two kinds of news.

`prediction.<status>` when a prediction changes (its id and status only: the page re-reads
what it shows) and `delivery.rejected` when a delivery is refused, which the prediction
feed never carries. Each event id holds both positions, `<seq>.<delivery id>`, so a
reconnecting EventSource resumes both with no gap. Authenticated by the session cookie:
an EventSource cannot send a header, and a key must not ride in its URL.
"""

from __future__ import annotations

import time

from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.types import Send

from receiver.http.params import bad_parameter, parse_int
from receiver.live.events import EventHub
from receiver.live.fanout import EVENT_BATCH
from receiver.live.frames import reconnect_frame, sse_frame
from receiver.live.sse import (
    LAST_EVENT_ID_HEADER,
    RECONNECT_MILLISECONDS,
    EventStream,
    keep_alive_or_wait,
    write_chunk,
)
from receiver.state import receiver_state
from vlmhooks.reads.activity import (
    DeliveryMark,
    EventMark,
    current_positions,
    event_marks_after,
    refusals_after,
)
from vlmhooks.reads.bounded import call_within
from vlmhooks.reads.pagination import MAX_ROW_ID

__all__ = ["DashboardStream", "dashboard_events"]

REJECTED_EVENT = b"delivery.rejected"


def _position(name: str, raw: str) -> int:
    return parse_int(name, raw, minimum=0, maximum=MAX_ROW_ID)


def resume_positions(request: Request) -> tuple[int, int] | None:
    """(event seq, delivery id) to resume after, or None for "from now on".

    The header wins: the browser adds it on reconnect to the URL the page first opened.
    """
    header = request.headers.get(LAST_EVENT_ID_HEADER, "").strip()
    if header:
        seq, dot, delivery = header.partition(".")
        if not dot:
            raise bad_parameter("Last-Event-ID", "expected <event seq>.<delivery id>")
        return _position("Last-Event-ID", seq), _position("Last-Event-ID", delivery)
    after = request.query_params.get("after")
    after_delivery = request.query_params.get("after_delivery")
    if after is None and after_delivery is None:
        return None
    if after is None or after_delivery is None:
        raise bad_parameter("after", "give both after and after_delivery, or neither")
    return _position("after", after), _position("after_delivery", after_delivery)


class DashboardStream(EventStream):
    """EventStream's connection handling (disconnects, shutdown) over both feeds."""

    def __init__(
        self, engine: Engine, hub: EventHub, after: int, after_delivery: int, read_timeout: float
    ) -> None:
        super().__init__(engine, hub, after, read_timeout=read_timeout)
        self.last_delivery = after_delivery

    def _frame(self, event: bytes, data: object) -> bytes:
        # Both positions in the id, so a reconnect resumes both feeds.
        return sse_frame(b"%d.%d" % (self.last_seq, self.last_delivery), event, data)

    def _encode(self, marks: list[EventMark], refusals: list[DeliveryMark]) -> bytes:
        frames = []
        for mark in marks:
            self.last_seq = mark.seq
            data = {"id": mark.prediction_id, "status": mark.type.removeprefix("prediction.")}
            frames.append(self._frame(mark.type.encode("utf-8"), data))
        for refusal in refusals:
            self.last_delivery = refusal.id
            frames.append(self._frame(REJECTED_EVENT, refusal.summary))
        return b"".join(frames)

    async def _pump(self, send: Send) -> None:
        await write_chunk(send, reconnect_frame(RECONNECT_MILLISECONDS))
        quiet_since = time.monotonic()
        while True:
            ticket = self.hub.ticket()
            marks = await self._read(event_marks_after, self.engine, self.last_seq, EVENT_BATCH)
            refusals = await self._read(
                refusals_after, self.engine, self.last_delivery, EVENT_BATCH
            )
            if marks or refusals:
                await write_chunk(send, self._encode(marks, refusals))
                quiet_since = time.monotonic()
                if EVENT_BATCH in (len(marks), len(refusals)):
                    continue  # more are waiting; do not sleep between batches
            quiet_since = await keep_alive_or_wait(send, self.hub, ticket, quiet_since)


def _now_positions(engine: Engine) -> tuple[int, int]:
    with engine.connect() as connection:
        positions = current_positions(connection)
    return positions.event_seq, positions.delivery_id


async def dashboard_events(request: Request) -> DashboardStream:
    """Endpoint: a bad resume position is a 400 before any byte is streamed."""
    state = receiver_state(request)
    positions = resume_positions(request)
    timeout = state.settings.db_timeout
    if positions is None:
        positions = await call_within(timeout, _now_positions, state.engine)
    return DashboardStream(state.engine, state.events, *positions, read_timeout=timeout)

"""Server-Sent Events on the wire: the one frame encoder, and the lines that are not events.

Both streams use it: the change feed (`GET /v1/events`, receiver/live/sse.py) and the
dashboard's (`GET /dashboard/events`, receiver/dashboard/stream.py).
"""

from __future__ import annotations

import orjson

from vlmhooks.reads.queries import StoredEvent

__all__ = ["KEEPALIVE_COMMENT", "format_event", "reconnect_frame", "sse_frame"]

KEEPALIVE_COMMENT = b": keep-alive\n\n"


def sse_frame(event_id: bytes, event: bytes, data: object) -> bytes:
    """One event: its id, its type and its data as JSON. orjson writes no newline, so one
    `data:` line carries the whole document (a newline would need one `data:` per line)."""
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (event_id, event, orjson.dumps(data))


def format_event(event: StoredEvent) -> bytes:
    """A change-feed event; its id is the feed's `seq`, what `Last-Event-ID` resumes after."""
    return sse_frame(b"%d" % event.seq, event.type.encode("utf-8"), event.data)


def reconnect_frame(milliseconds: int, comment: str | None = None) -> bytes:
    """How long the client's EventSource waits before reconnecting, with an optional comment
    for whoever reads the raw stream."""
    if comment is None:
        return b"retry: %d\n\n" % milliseconds
    return b"retry: %d\n: %s\n\n" % (milliseconds, comment.encode("utf-8"))

"""Reading a request body under a byte cap, while it streams in, whatever Content-Length says."""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.types import Receive

from receiver.errors import BodyTooLarge
from vlmhooks.errors import PayloadError


def declared_length(content_length: str | None, *, limit: int) -> int | None:
    """The Content-Length as an int; `BodyTooLarge` when it already exceeds `limit`."""
    if content_length is None:
        return None
    text = content_length.strip()
    # int() would also take "+5", " 5", "5_0" and Unicode digits; HTTP allows 1*DIGIT only.
    if not text.isascii() or not text.isdigit():
        raise PayloadError("Content-Length must be a non-negative integer")
    length = int(text)
    if length > limit:
        raise BodyTooLarge(
            f"Content-Length {length} exceeds the {limit}-byte limit", head=b"", limit=limit
        )
    return length


async def read_body(receive: Receive, *, limit: int) -> bytes:
    """The request body from ASGI `receive`, stopping with `BodyTooLarge` as soon as more
    than `limit` bytes arrive; `ClientDisconnect` when the client goes away first.

    Counting what actually streams in (not trusting Content-Length) means a sender can
    make us hold at most `limit` bytes plus the one chunk that crossed it. `receive`
    directly, not `Request.stream()`: a callback's body is one message, and the async
    generator around it cost more than reading it.
    """
    parts: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            parts.append(chunk[: len(chunk) - (total - limit)])
            raise BodyTooLarge(
                f"the body exceeds the {limit}-byte limit", head=b"".join(parts), limit=limit
            )
        if chunk:
            parts.append(chunk)
        if not message.get("more_body", False):
            # One chunk is the common case (a small callback); skip the copy.
            return parts[0] if len(parts) == 1 else b"".join(parts)

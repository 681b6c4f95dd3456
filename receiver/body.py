"""Reading a request body under a byte cap, while it streams in, whatever Content-Length says."""

from __future__ import annotations

from collections.abc import AsyncIterable

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


async def read_body(chunks: AsyncIterable[bytes], *, limit: int) -> bytes:
    """Join `chunks`, stopping with `BodyTooLarge` as soon as more than `limit` bytes arrive.

    Counting what actually streams in (not trusting Content-Length) means a sender can
    make us hold at most `limit` bytes plus the one chunk that crossed it.
    """
    parts: list[bytes] = []
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            parts.append(chunk[: len(chunk) - (total - limit)])
            raise BodyTooLarge(
                f"the body exceeds the {limit}-byte limit", head=b"".join(parts), limit=limit
            )
        if chunk:
            parts.append(chunk)
    # One chunk is the common case (a small callback); skip the copy.
    return parts[0] if len(parts) == 1 else b"".join(parts)

"""Redis Streams destinations: XADD with the message id, type and JSON document as fields.

Redis has no de-duplication of its own: a redelivery after a crash appends the same `id`
twice, and consumers de-duplicate on it (as with every at-least-once channel).
"""

from __future__ import annotations

from typing import Any

from vlmhooks.forward.destinations import Destination
from vlmhooks.forward.publish import DELIVERED, Attempt, Message, error_text

__all__ = ["RedisPublisher"]


class RedisPublisher:
    def __init__(self, destination: Destination, *, timeout: float) -> None:
        import redis.asyncio

        self._destination = destination
        self._stream = destination.params["stream"]
        self._redis: Any = redis.asyncio.Redis.from_url(
            destination.url, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    async def publish(self, message: Message) -> Attempt:
        import redis

        fields = {"id": message.id, "type": message.type, "payload": message.body}
        try:
            await self._redis.xadd(self._stream, fields)
        except (redis.RedisError, OSError) as exc:
            return Attempt("retry", self._destination.scrub(error_text(exc)))
        return DELIVERED

    async def aclose(self) -> None:
        await self._redis.aclose()

"""NATS JetStream destinations: a publish acknowledged by the stream, with `Nats-Msg-Id`
set to the message id, so JetStream drops a redelivery within its duplicate window."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from vlmhooks.forward.destinations import Destination
from vlmhooks.forward.publish import DELIVERED, Attempt, Message, error_text

__all__ = ["NatsPublisher"]

log = logging.getLogger("vlmhooks.forward")


class NatsPublisher:
    def __init__(self, destination: Destination, *, timeout: float) -> None:
        self._destination = destination
        self._subject = destination.params["subject"]
        self._timeout = timeout
        self._connection: Any = None
        self._lock = asyncio.Lock()

    async def _jetstream(self) -> Any:
        import nats

        async with self._lock:
            if self._connection is None or self._connection.is_closed:
                self._connection = await nats.connect(
                    servers=[self._destination.url],
                    connect_timeout=self._timeout,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    error_cb=self._on_error,
                )
            return self._connection.jetstream(timeout=self._timeout)

    async def _on_error(self, exc: Exception) -> None:
        # The client's own default prints the error, which may quote the server URL.
        log.debug("nats %s: %s", self._destination.target, self._destination.scrub(str(exc)))

    async def publish(self, message: Message) -> Attempt:
        import nats.errors

        headers = {"Nats-Msg-Id": message.id, "Content-Type": "application/json"}
        try:
            jetstream = await self._jetstream()
            await jetstream.publish(self._subject, message.body, headers=headers)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            return Attempt("retry", self._destination.scrub(error_text(exc)))
        return DELIVERED

    async def aclose(self) -> None:
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()

"""AMQP 0-9-1 (RabbitMQ) destinations: a persistent message with `message_id`, published
mandatory on a channel with publisher confirms, so a 2xx-equivalent means the broker has it
and it reached a queue."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from vlmhooks.forward.destinations import Destination
from vlmhooks.forward.publish import DELIVERED, Attempt, Message, error_text

__all__ = ["AmqpPublisher"]


class AmqpPublisher:
    def __init__(self, destination: Destination, *, timeout: float) -> None:
        self._destination = destination
        self._exchange_name = destination.params.get("exchange", "")
        self._routing_key = destination.params.get("routing_key", "")
        self._timeout = timeout
        self._connection: Any = None
        self._exchange: Any = None
        self._lock = asyncio.Lock()

    async def _open(self) -> Any:
        import aio_pika

        async with self._lock:
            if self._connection is None or self._connection.is_closed:
                self._connection = await aio_pika.connect(
                    self._destination.url, timeout=self._timeout
                )
                # on_return_raises: an unroutable message is a failure, not a silent drop.
                channel = await self._connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
                self._exchange = (
                    await channel.get_exchange(self._exchange_name, ensure=True)
                    if self._exchange_name
                    else channel.default_exchange
                )
            return self._exchange

    async def publish(self, message: Message) -> Attempt:
        import aio_pika

        amqp_message = aio_pika.Message(
            message.body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.id,
            type=message.type,
            timestamp=message.timestamp,
        )
        try:
            exchange = await self._open()
            await exchange.publish(
                amqp_message, routing_key=self._routing_key, mandatory=True, timeout=self._timeout
            )
        except (*aio_pika.exceptions.CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            # A returned or nacked message leaves the channel usable; anything else may not.
            if not isinstance(exc, aio_pika.exceptions.DeliveryError):
                await self._reset()
            return Attempt("retry", self._destination.scrub(error_text(exc)))
        return DELIVERED

    async def _reset(self) -> None:
        """A failed channel is closed by the broker; start over on the next attempt."""
        async with self._lock:
            connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None and not connection.is_closed:
            # Closing a broken connection may fail too; it is being dropped either way.
            with contextlib.suppress(Exception):
                await connection.close()

    async def aclose(self) -> None:
        await self._reset()

"""Set up and read back what the tests publish to Redis, NATS JetStream and RabbitMQ; each
test names its own stream, subject, exchange and queue, and removes them afterwards."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import aio_pika
import nats
import redis

from tests.forward.services import AMQP_URL, NATS_URL, REDIS_URL


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Published:
    message_id: str
    body: bytes
    extra: dict[str, Any]


def redis_stream(stream: str) -> list[Published]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        entries = client.xrange(stream)
    finally:
        client.close()
    return [
        Published(fields[b"id"].decode(), fields[b"payload"], {"type": fields[b"type"].decode()})
        for _entry_id, fields in entries
    ]


def redis_delete(stream: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.delete(stream)
    finally:
        client.close()


async def _nats(action: Any) -> Any:
    connection = await nats.connect(NATS_URL)
    try:
        return await action(connection.jetstream())
    finally:
        await connection.close()


def nats_add_stream(stream: str, subject: str) -> None:
    asyncio.run(_nats(lambda js: js.add_stream(name=stream, subjects=[subject])))


def nats_delete_stream(stream: str) -> None:
    asyncio.run(_nats(lambda js: js.delete_stream(stream)))


def nats_stream(stream: str) -> list[Published]:
    async def read(js: Any) -> list[Published]:
        info = await js.stream_info(stream)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if info.state.messages == 0:
                break
            message = await js.get_msg(stream, seq)
            headers = message.headers or {}
            found.append(Published(headers["Nats-Msg-Id"], message.data, dict(headers)))
        return found

    result: list[Published] = asyncio.run(_nats(read))
    return result


@dataclass(frozen=True)
class AmqpNames:
    exchange: str
    queue: str
    routing_key: str


def amqp_declare(names: AmqpNames) -> None:
    async def declare() -> None:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(names.exchange, aio_pika.ExchangeType.DIRECT)
            queue = await channel.declare_queue(names.queue, durable=True)
            await queue.bind(exchange, names.routing_key)

    asyncio.run(declare())


def amqp_drain(names: AmqpNames) -> list[Published]:
    async def drain() -> list[Published]:
        connection = await aio_pika.connect(AMQP_URL)
        found = []
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(names.queue)
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                extra = {
                    "persistent": message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT,
                    "type": message.type,
                    "content_type": message.content_type,
                }
                found.append(Published(str(message.message_id), message.body, extra))
        return found

    result: list[Published] = asyncio.run(drain())
    return result


def amqp_delete(names: AmqpNames) -> None:
    async def delete() -> None:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(names.queue)
            await channel.exchange_delete(names.exchange)

    asyncio.run(delete())

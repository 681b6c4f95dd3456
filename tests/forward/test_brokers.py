"""Forwarding to Redis Streams, NATS JetStream and RabbitMQ, on the real servers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest

from tests.forward.brokers import (
    AmqpNames,
    Published,
    amqp_declare,
    amqp_delete,
    amqp_drain,
    nats_add_stream,
    nats_delete_stream,
    nats_stream,
    redis_delete,
    redis_stream,
    unique,
)
from tests.forward.services import AMQP_URL, NATS_URL, REDIS_URL
from tests.forward.sink import wait_until
from tests.forward.support import forward_settings, running_receiver
from vlmhooks.forward.amqp import AmqpPublisher
from vlmhooks.forward.destinations import parse_destinations
from vlmhooks.forward.nats import NatsPublisher
from vlmhooks.forward.publish import Message

pytestmark = pytest.mark.usefixtures("redis_server", "nats_server", "rabbitmq_server")

STATUSES = ("pending", "running", "completed")
PREDICTIONS = 4


@pytest.fixture
def names() -> Iterator[tuple[str, str, str, AmqpNames]]:
    stream, subject = unique("vlm_stream"), unique("vlm.subject")
    nats_stream_name = unique("VLM")
    amqp = AmqpNames(unique("vlm_exchange"), unique("vlm_queue"), unique("key"))
    nats_add_stream(nats_stream_name, subject)
    amqp_declare(amqp)
    yield stream, subject, nats_stream_name, amqp
    redis_delete(stream)
    nats_delete_stream(nats_stream_name)
    amqp_delete(amqp)


def _changes(published: list[Published]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for item in published:
        data = orjson.loads(item.body)["data"]
        found.setdefault(data["id"], []).append(data["status"])
    return found


def test_every_change_reaches_every_broker(
    database_url: str, names: tuple[str, str, str, AmqpNames]
) -> None:
    stream, subject, nats_stream_name, amqp = names
    forward_to = ",".join(
        [
            f"{REDIS_URL}?stream={stream}",
            f"{NATS_URL}?subject={subject}",
            f"{AMQP_URL}?exchange={amqp.exchange}&routing_key={amqp.routing_key}",
        ]
    )
    settings = forward_settings(database_url, forward_to)
    with running_receiver(settings) as receiver:
        for status in STATUSES:
            for n in range(PREDICTIONS):
                receiver.callback(f"pred_{n}", status)
        wait_until(lambda: all(d["backlog"] == 0 for d in receiver.forwarding()))
        assert all(d["last_error"] is None for d in receiver.forwarding())
    expected = {f"pred_{n}": list(STATUSES) for n in range(PREDICTIONS)}
    on_redis, on_nats, on_amqp = (
        redis_stream(stream),
        nats_stream(nats_stream_name),
        amqp_drain(amqp),
    )
    for published in (on_redis, on_nats, on_amqp):
        assert _changes(published) == expected
    # One id per change, the same on every broker.
    ids = [item.message_id for item in on_redis]
    assert len(set(ids)) == len(ids) == PREDICTIONS * len(STATUSES)
    assert sorted(i.message_id for i in on_nats) == sorted(ids)
    assert sorted(i.message_id for i in on_amqp) == sorted(ids)
    assert all(
        i.extra["persistent"] and i.extra["content_type"] == "application/json" for i in on_amqp
    )
    assert all(i.extra["type"] == orjson.loads(i.body)["type"] for i in on_amqp + on_redis)


def _message(message_id: str) -> Message:
    return Message(message_id, "prediction.completed", b'{"type":"x"}', datetime.now(UTC))


def test_jetstream_drops_a_redelivered_message_id() -> None:
    stream, subject = unique("VLM"), unique("vlm.dedupe")
    nats_add_stream(stream, subject)
    (destination,) = parse_destinations(f"{NATS_URL}?subject={subject}")

    async def publish_twice() -> list[str]:
        publisher = NatsPublisher(destination, timeout=5)
        try:
            return [(await publisher.publish(_message("msg_same"))).outcome for _ in range(2)]
        finally:
            await publisher.aclose()

    try:
        assert asyncio.run(publish_twice()) == ["delivered", "delivered"]
        assert [item.message_id for item in nats_stream(stream)] == ["msg_same"]
    finally:
        nats_delete_stream(stream)


def test_a_subject_without_a_stream_is_a_retry() -> None:
    (destination,) = parse_destinations(f"{NATS_URL}?subject={unique('vlm.nowhere')}")

    async def publish() -> str | None:
        publisher = NatsPublisher(destination, timeout=2)
        try:
            attempt = await publisher.publish(_message("msg_lost"))
        finally:
            await publisher.aclose()
        assert attempt.outcome == "retry"
        return attempt.error

    assert asyncio.run(publish())


def test_an_unroutable_amqp_message_is_a_retry_not_a_loss() -> None:
    names = AmqpNames(unique("vlm_exchange"), unique("vlm_queue"), unique("key"))
    amqp_declare(names)
    (destination,) = parse_destinations(
        f"{AMQP_URL}?exchange={names.exchange}&routing_key=no-queue-bound"
    )

    async def publish() -> tuple[str, str]:
        publisher = AmqpPublisher(destination, timeout=5)
        try:
            unroutable = await publisher.publish(_message("msg_unroutable"))
            missing = AmqpPublisher(
                parse_destinations(f"{AMQP_URL}?exchange={unique('absent')}")[0], timeout=5
            )
            absent = await missing.publish(_message("msg_absent"))
            await missing.aclose()
        finally:
            await publisher.aclose()
        return unroutable.outcome, absent.outcome

    try:
        assert asyncio.run(publish()) == ("retry", "retry")
    finally:
        amqp_delete(names)

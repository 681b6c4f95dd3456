"""The brokers forwarding tests publish to: real servers on 127.0.0.1, started if down."""

from __future__ import annotations

import pytest

from tests.forward.services import ensure_service


@pytest.fixture(scope="session")
def redis_server() -> None:
    ensure_service("redis")


@pytest.fixture(scope="session")
def nats_server() -> None:
    ensure_service("nats")


@pytest.fixture(scope="session")
def rabbitmq_server() -> None:
    ensure_service("rabbitmq")

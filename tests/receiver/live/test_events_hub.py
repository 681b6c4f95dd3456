"""EventHub: local wake-ups, the SQLite poll, PostgreSQL LISTEN and its reconnection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy.engine import Engine

from receiver.live.events import LISTEN_APPLICATION_NAME, EventHub
from tests.conftest import POSTGRES_ADMIN_DSN
from tests.receiver.lookup_support import after, prediction
from vlmhooks.store.db import make_engine
from vlmhooks.store.ingest_one import ingest_prediction

pytestmark = pytest.mark.anyio


async def until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.02)


async def test_notify_committed_wakes_a_waiter_from_another_thread(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    hub = EventHub(engine, poll_interval=30)
    await hub.start()
    try:
        ticket = hub.ticket()
        started = time.monotonic()
        with after(0.1, hub.notify_committed):
            await hub.wait(ticket, 20)
        assert time.monotonic() - started < 2
        assert hub.generation == 1
        # A ticket taken before a change is already satisfied: no lost wake-up.
        stale = hub.ticket()
        hub.notify_committed()
        await until(lambda: hub.generation == 2)
        started = time.monotonic()
        await hub.wait(stale, 20)
        assert time.monotonic() - started < 0.5
    finally:
        await hub.stop()
        engine.dispose()


async def test_sqlite_waiters_recheck_at_the_poll_interval(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    hub = EventHub(engine, poll_interval=0.2)
    await hub.start()
    try:
        started = time.monotonic()
        await hub.wait(hub.ticket(), 20)
        assert 0.15 < time.monotonic() - started < 2
        assert not hub.listening
    finally:
        await hub.stop()
        engine.dispose()


def _terminate_listener(database: str) -> int:
    """Kill the hub's LISTEN connection (only this test's database: others run in parallel)."""
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = %s",
            (LISTEN_APPLICATION_NAME, database),
        ).fetchone()
    return int(row[0]) if row else 0


async def _woken_by_notify(hub: EventHub, engine: Engine, prediction_id: str) -> float:
    ticket = hub.ticket()
    started = time.monotonic()
    write = lambda: ingest_prediction(  # noqa: E731
        engine, prediction(prediction_id), submission_id=None, source="callback"
    )
    with after(0.1, write):
        await hub.wait(ticket, 20)
        return time.monotonic() - started


@pytest.mark.postgres
async def test_listen_wakes_and_reconnects_after_the_connection_dies(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    # The poll is far longer than the assertions allow: only a NOTIFY can wake in time.
    hub = EventHub(engine, poll_interval=30)
    await hub.start()
    try:
        await until(lambda: hub.listening)
        assert await _woken_by_notify(hub, engine, "n1") < 3

        assert _terminate_listener(engine.url.database or "") == 1
        await until(lambda: not hub.listening)
        generation = hub.generation
        await until(lambda: hub.listening)
        # Reconnecting wakes everyone once: commits in the gap were never announced.
        assert hub.generation > generation
        assert await _woken_by_notify(hub, engine, "n2") < 3
    finally:
        await hub.stop()
        engine.dispose()
    assert not hub.listening

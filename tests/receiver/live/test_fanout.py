"""Fan-out over real HTTP: idle waiters cost no queries, each event is encoded once, a slow
subscriber is dropped and resumes without a gap, and shutdown answers every waiter.

On SQLite and PostgreSQL; the receiver runs under the protocol `vlm-receiver serve` uses.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from receiver.live import events as events_module
from receiver.live import fanout as fanout_module
from receiver.live.events import EventHub
from receiver.live.fanout import FanOut
from tests.receiver.lookup_support import (
    AUTH,
    EventReader,
    client,
    prediction,
    receiver_settings,
)
from tests.reliability.rawsocket import hardened_receiver, read_until_closed
from tests.servers import UvicornThread
from vlmhooks.store.db import make_engine
from vlmhooks.store.ingest_one import ingest_prediction

DEADLINE = 20.0


def store(engine: Engine, prediction_id: str, status: str = "completed", **fields: Any) -> None:
    ingest_prediction(
        engine, prediction(prediction_id, status, **fields), submission_id=None, source="callback"
    )


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def listeners(http: httpx.Client) -> dict[str, float]:
    text = http.get("/metrics").text
    found = re.findall(r'vlmhooks_event_listeners\{kind="(\w+)"\} ([0-9.]+)', text)
    return {kind: float(value) for kind, value in found}


@contextmanager
def counted_queries() -> Iterator[list[str]]:
    """Every statement any engine in this process executes, while the block runs."""
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    sa.event.listen(Engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(Engine, "before_cursor_execute", count)


@contextmanager
def in_threads(count: int, action: Callable[[int], Any]) -> Iterator[list[Any]]:
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            results[index] = action(index)
        except Exception as exc:  # reported by the assertions on `results`
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield results
    finally:
        for thread in threads:
            thread.join(timeout=DEADLINE + 40)


def test_idle_waiters_make_no_database_queries(
    database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The process's own safety nets (a read every 10 s whatever the number of waiters: LISTEN
    # could lose a notification) are pushed out of the window. SQLite's data-version check is
    # not a query of the database's tables: it reads SQLite's own header.
    monkeypatch.setattr(events_module, "LISTENING_POLL_INTERVAL", 120.0)
    monkeypatch.setattr(fanout_module, "VERSION_TRUST_SECONDS", 120.0)
    store(engine, "busy", "running")
    settings = receiver_settings(database_url)
    polls, streams = 20, 20
    with (
        hardened_receiver(settings) as server,
        client(server) as http,
        ExitStack() as stack,
        counted_queries() as statements,
    ):
        open_streams = [
            stack.enter_context(http.stream("GET", "/v1/events", timeout=DEADLINE))
            for _ in range(streams)
        ]

        def long_poll(index: int) -> int:
            with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as own:
                return own.get("/v1/predictions/busy", params={"wait": 30}).status_code

        def settled() -> bool:
            # Every waiter registered and past its own first read (one per long poll, one
            # backlog read per stream); from then on only a change may cause a query.
            first_reads = sum("prediction.id =" in text for text in statements)
            backlog_reads = sum("event.seq >" in text for text in statements)
            registered = listeners(http) == {"sse": streams, "long_poll": polls}
            return registered and first_reads >= polls and backlog_reads >= streams

        with in_threads(polls, long_poll) as results:
            until(settled, "every waiter to settle")
            idle_from = len(statements)
            # Several SQLite poll intervals: idle waiters must not turn them into queries.
            time.sleep(3 * events_module.DEFAULT_POLL_INTERVAL + 0.5)
            assert statements[idle_from:] == []
            store(engine, "busy", "completed")  # one commit answers every long poll
        for response in open_streams:
            assert EventReader(response).next_event().data  # and reaches every stream
    assert results == [200] * polls


def test_each_event_is_encoded_once_whatever_the_subscribers(
    database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[int] = []
    original = fanout_module.format_event

    def counting(event: Any) -> bytes:
        encoded.append(event.seq)
        return original(event)

    monkeypatch.setattr(fanout_module, "format_event", counting)
    subscribers = 10
    with (
        hardened_receiver(receiver_settings(database_url)) as server,
        client(server) as http,
        ExitStack() as stack,
    ):
        responses = [
            stack.enter_context(http.stream("GET", "/v1/events", timeout=DEADLINE))
            for _ in range(subscribers)
        ]
        until(lambda: listeners(http).get("sse") == subscribers, "subscribers")
        readers = [EventReader(response) for response in responses]
        for index in range(3):
            store(engine, f"enc{index}", "completed")
        received = [[event.id for event in reader.events(3)] for reader in readers]
    assert all(ids == received[0] for ids in received)
    assert sorted(encoded) == sorted(int(seq or 0) for seq in received[0])


def _slow_subscriber(server: UvicornThread) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive window: the server's writes back up after a few KiB.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(
        b"GET /v1/events?after=0 HTTP/1.1\r\nhost: x\r\n"
        + f"authorization: {AUTH['Authorization']}\r\n\r\n".encode()
    )
    return sock


def test_a_slow_subscriber_is_dropped_and_resumes_without_a_gap(
    database_url: str, engine: Engine
) -> None:
    count, payload = 200, "x" * 50_000  # 10 MB: more than every socket buffer on the way
    settings = receiver_settings(database_url, sse_buffer_bytes=128 * 1024)
    with hardened_receiver(settings) as server, client(server) as http:
        sock = _slow_subscriber(server)
        until(lambda: listeners(http).get("sse") == 1, "the subscriber")
        for index in range(count):
            store(engine, f"slow{index:03d}", "completed", response={"text": payload})
        # Dropped: the stream ends although the subscriber has read nothing yet.
        with sock:
            stream = read_until_closed(sock, deadline=DEADLINE)
        until(lambda: listeners(http).get("sse") == 0, "the drop")
        first = [int(seq) for seq in re.findall(rb"\nid: (\d+)\n", b"\n" + stream)]
        # However many it got before the drop (a burst may overflow it at once), it ended
        # cleanly, and it resumes from the last event it has.
        assert len(first) < count
        assert stream.endswith(b"\r\n0\r\n\r\n")
        resume = {"Last-Event-ID": str(first[-1] if first else 0)}
        with http.stream("GET", "/v1/events", headers=resume, timeout=DEADLINE) as response:
            rest = [
                int(event.id or 0) for event in EventReader(response).events(count - len(first))
            ]
    seqs = first + rest
    assert seqs == sorted(seqs) and len(set(seqs)) == count


def test_shutdown_answers_long_polls_and_hints_streams(database_url: str, engine: Engine) -> None:
    store(engine, "pending-one", "running")
    settings = receiver_settings(database_url)
    server_cm = hardened_receiver(settings, timeout_graceful_shutdown=15)
    server = server_cm.__enter__()
    try:
        with (
            client(server) as http,
            in_threads(
                1,
                lambda _i: httpx.get(
                    f"{server.url}/v1/predictions/pending-one",
                    params={"wait": 60},
                    headers=AUTH,
                    timeout=60,
                ),
            ) as results,
            http.stream("GET", "/v1/events", timeout=DEADLINE) as stream,
        ):
            until(lambda: listeners(http) == {"sse": 1, "long_poll": 1}, "both waiters")
            reader = EventReader(stream)
            started = time.monotonic()
            threading.Thread(target=server_cm.__exit__, args=(None, None, None)).start()
            with pytest.raises(EOFError):
                reader.next_event()  # the stream ends cleanly...
            assert reader.retry == 500  # ...after the shutdown's retry hint
        answer = results[0]
        assert isinstance(answer, httpx.Response), answer
        assert answer.status_code == 200 and answer.json()["status"] == "running"
        assert time.monotonic() - started < 10  # well inside the 15 s budget
    finally:
        server.thread.join(timeout=30)


def test_the_sqlite_data_version_sees_every_commit_even_in_a_reused_wal(sqlite_url: str) -> None:
    # A restarted WAL is overwritten in place (same size), so file sizes and times cannot
    # tell a commit; and a WAL grows before its commit is visible. The data version changes
    # exactly when another connection's commit becomes visible.
    writer = make_engine(sqlite_url)
    changes = fanout_module.sqlite_changes(writer)
    assert changes is not None
    try:
        for index in range(40):
            with writer.begin() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(RESTART)")
            before = changes()
            assert changes() == before  # nothing committed in between
            store(writer, f"fp{index}", "running")
            assert changes() != before, f"commit {index} left the data version unchanged"
    finally:
        changes.close()
        writer.dispose()


@pytest.mark.anyio
async def test_the_pump_sleeps_through_commits_until_a_listener_arrives(sqlite_url: str) -> None:
    """No listener: commits do not wake the pump (each wake-up was a task step and a timer
    per batch). A stream that arrives after a quiet spell still gets the next event, and
    nothing from before it subscribed."""
    engine = make_engine(sqlite_url)
    hub = EventHub(engine, poll_interval=30)
    fanout = FanOut(engine, hub)
    await hub.start()
    await fanout.start()
    tickets = 0
    take_ticket = hub.ticket

    def counted_ticket() -> asyncio.Event | None:
        nonlocal tickets
        tickets += 1
        return take_ticket()

    hub.ticket = counted_ticket  # type: ignore[method-assign]
    try:
        await asyncio.sleep(0.05)  # the pump's first turn
        turns = tickets
        store(engine, "pred_quiet")
        for _ in range(20):
            hub.notify_committed()
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        assert tickets == turns, "the pump woke for commits nobody listens to"

        subscription = await fanout.subscribe()
        store(engine, "pred_heard")
        hub.notify_committed()
        frames = await subscription.take(at_most=DEADLINE)
        assert [b"pred_heard" in frame for _seq, frame in frames] == [True]
        assert tickets > turns
    finally:
        await fanout.stop()
        await hub.stop()
        engine.dispose()

"""GET /v1/events: live delivery, resume without gap or duplicate, keep-alives, restarts."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import Engine

from receiver.live import events as events_module
from receiver.live.frames import format_event, reconnect_frame, sse_frame
from tests.conftest import POSTGRES_ADMIN_DSN
from tests.receiver.lookup_support import (
    EventReader,
    ServerSentEvent,
    after,
    client,
    prediction,
    running_receiver,
)
from vlmhooks.reads.queries import StoredEvent
from vlmhooks.store.db import make_engine
from vlmhooks.store.ingest_one import ingest_prediction

STREAM_TIMEOUT = httpx.Timeout(10.0)


def store(engine: Engine, prediction_id: str, status: str) -> None:
    ingest_prediction(
        engine, prediction(prediction_id, status), submission_id=None, source="callback"
    )


def open_stream(http: httpx.Client, headers: dict[str, str] | None = None, **params: Any) -> Any:
    return http.stream("GET", "/v1/events", params=params, headers=headers, timeout=STREAM_TIMEOUT)


def summary(events: list[ServerSentEvent]) -> list[tuple[str, str]]:
    return [(event.event or "", json.loads(event.data)["id"]) for event in events]


def test_frames_have_known_bytes() -> None:
    """The one encoder both streams use (`/v1/events`, `/dashboard/events`), byte for byte."""
    event = StoredEvent(7, "prediction.completed", {"id": "p-1", "note": "é\n"})
    assert format_event(event) == (
        b'id: 7\nevent: prediction.completed\ndata: {"id":"p-1","note":"\xc3\xa9\\n"}\n\n'
    )
    assert sse_frame(b"7.3", b"delivery.rejected", {"n": 1}) == (
        b'id: 7.3\nevent: delivery.rejected\ndata: {"n":1}\n\n'
    )
    assert reconnect_frame(2000) == b"retry: 2000\n\n"
    assert reconnect_frame(500, "going away") == b"retry: 500\n: going away\n\n"


def test_events_arrive_live(database_url: str, engine: Engine) -> None:
    store(engine, "before", "completed")  # older than the subscription: not replayed
    with running_receiver(database_url) as server, client(server) as http:
        with open_stream(http) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"].startswith("no-cache")
            reader = EventReader(response)
            store(engine, "live-1", "running")
            store(engine, "live-1", "completed")
            store(engine, "live-2", "failed")
            received = reader.events(3)
        stored = http.get("/v1/predictions/live-1").json()
    assert reader.retry is not None
    assert summary(received) == [
        ("prediction.running", "live-1"),
        ("prediction.completed", "live-1"),
        ("prediction.failed", "live-2"),
    ]
    ids = [int(event.id or 0) for event in received]
    assert ids == sorted(ids) and len(set(ids)) == 3
    # `data:` is the prediction in the API's shape, exactly as GET returns it (including the
    # first delivery's received_at on an update).
    assert json.loads(received[1].data) == stored


def test_resume_with_last_event_id_has_no_gap_and_no_duplicate(
    database_url: str, engine: Engine
) -> None:
    for index in range(5):
        store(engine, f"r{index}", "completed")
    with running_receiver(database_url) as server, client(server) as http:
        with open_stream(http, after=0) as response:
            first = EventReader(response).events(5)
        assert summary(first) == [("prediction.completed", f"r{index}") for index in range(5)]
        store(engine, "r5", "completed")
        store(engine, "r6", "completed")
        resume_at = first[2].id or ""
        # The header wins over the query: EventSource reconnects to its original URL.
        with open_stream(http, headers={"Last-Event-ID": resume_at}, after=0) as response:
            resumed = EventReader(response).events(4)
        with open_stream(http, last_event_id=resume_at) as response:
            by_query = EventReader(response).events(4)
    expected = [f"r{index}" for index in range(3, 7)]
    assert [json.loads(event.data)["id"] for event in resumed] == expected
    assert [event.id for event in by_query] == [event.id for event in resumed]
    assert [event.id for event in first[3:]] == [event.id for event in resumed[:2]]


def test_invalid_resume_positions_are_400(sqlite_url: str) -> None:
    # Validation precedes any database access, so one backend is enough.
    with running_receiver(sqlite_url) as server, client(server) as http:
        for headers, params in (
            ({"Last-Event-ID": "abc"}, {}),
            ({"Last-Event-ID": "-1"}, {}),
            ({}, {"after": "1.5"}),
            ({}, {"last_event_id": "x"}),
            ({}, {"after": ""}),
        ):
            response = http.get("/v1/events", headers=headers, params=params)
            assert response.status_code == 400, (headers, params)
            assert response.headers["content-type"] == "application/problem+json"


def test_keep_alive_comments_while_idle(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "DEFAULT_KEEPALIVE_INTERVAL", 0.2)
    with (
        running_receiver(sqlite_url) as server,
        client(server) as http,
        open_stream(http) as response,
    ):
        reader = EventReader(response)
        started = time.monotonic()
        assert reader.next_comment() == "keep-alive"
        assert reader.next_comment() == "keep-alive"
        assert time.monotonic() - started < 2


def test_resume_across_a_receiver_restart(database_url: str, engine: Engine) -> None:
    with (
        running_receiver(database_url) as first_server,
        client(first_server) as http,
        open_stream(http) as response,
    ):
        reader = EventReader(response)
        store(engine, "x1", "running")
        store(engine, "x1", "completed")
        before = reader.events(2)
        first_server.stop()  # the stream is open: the server must still stop
        with pytest.raises(EOFError):  # a clean end of stream, not a broken one
            reader.next_event()
    # Written while no receiver runs; the resumed stream must still deliver them.
    store(engine, "x2", "failed")
    store(engine, "x3", "pending")
    resume = {"Last-Event-ID": before[-1].id or ""}
    with (
        running_receiver(database_url) as second_server,
        client(second_server) as http,
        open_stream(http, headers=resume) as response,
    ):
        reader = EventReader(response)
        missed = reader.events(2)
        store(engine, "x3", "completed")
        live = reader.next_event()
    assert summary(before) == [("prediction.running", "x1"), ("prediction.completed", "x1")]
    assert summary(missed) == [("prediction.failed", "x2"), ("prediction.pending", "x3")]
    assert summary([live]) == [("prediction.completed", "x3")]
    ids = [int(event.id or 0) for event in [*before, *missed, live]]
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_client_disconnects_cause_no_errors(
    database_url: str, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with running_receiver(database_url) as server:
        for index in range(3):
            with client(server) as http, open_stream(http) as response:
                reader = EventReader(response)
                store(engine, f"d{index}", "running")
                reader.next_event()
            # The client is gone; the server notices on its next write or at once.
        store(engine, "d0", "completed")  # the abandoned streams now have something to write
        time.sleep(0.3)
        with client(server) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get("/v1/predictions/d0").json()["status"] == "completed"
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []


def _wait_until_listening(database: str, receivers: int) -> None:
    """Block until every receiver's LISTEN connection is up (pg_stat_activity says so)."""
    deadline = time.monotonic() + 10
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as connection:
        while time.monotonic() < deadline:
            row = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND datname = %s AND query LIKE 'LISTEN%%'",
                (events_module.LISTEN_APPLICATION_NAME, database),
            ).fetchone()
            if row and row[0] >= receivers:
                return
            time.sleep(0.05)
    raise AssertionError("the receivers never started listening")


@pytest.mark.postgres
def test_notify_from_another_process_wakes_waiters(postgres_url: str) -> None:
    """A write by another process (here: ingest + NOTIFY, no local writer involved) wakes a
    long-poll and an SSE stream well inside the 10 s safety poll: only LISTEN can do that."""
    engine = make_engine(postgres_url)
    try:
        with (
            running_receiver(postgres_url) as waiter_server,
            running_receiver(postgres_url) as stream_server,
            client(waiter_server) as waiter,
            client(stream_server) as streamer,
        ):
            _wait_until_listening(engine.url.database or "", receivers=2)
            assert events_module.LISTENING_POLL_INTERVAL >= 10
            with open_stream(streamer) as response:
                reader = EventReader(response)
                started = time.monotonic()
                with after(0.3, lambda: store(engine, "cross", "completed")):
                    result = waiter.get("/v1/predictions/cross", params={"wait": 20})
                waited = time.monotonic() - started
                event = reader.next_event()
                streamed = time.monotonic() - started
    finally:
        engine.dispose()
    assert result.status_code == 200 and result.json()["status"] == "completed"
    assert waited < 3, waited
    assert summary([event]) == [("prediction.completed", "cross")]
    assert streamed < 3, streamed

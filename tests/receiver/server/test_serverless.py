"""`receiver.server.serverless.handler` invoked in-process with the events AWS sends: signed
callbacks and lookups against real databases, for every event kind."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator

import orjson
import psycopg
import pytest
import sqlalchemy as sa

from receiver.live import events as events_module
from tests.conftest import POSTGRES_ADMIN_DSN
from tests.receiver.callback_harness import (
    FROZEN_NOW,
    encode,
    prediction_body,
    receiver_settings,
    running_receiver,
)
from tests.receiver.lambda_events import EVENT_KINDS
from tests.receiver.lookup_support import after
from tests.receiver.serverless_support import (
    WEBHOOK_SECRET,
    lambda_instance,
    serverless_settings,
)
from vlmhooks.store.db import make_engine
from vlmhooks.store.ingest_one import ingest_prediction
from vlmhooks.store.tables import DELIVERY, EVENT, PREDICTION, PREDICTION_READ
from vlmhooks.trust.signatures import sign_vlmrun

PROBE_APPLICATION = "vlmhooks-test-probe"


@pytest.mark.parametrize("base64_body", [False, True], ids=["text-body", "base64-body"])
@pytest.mark.parametrize("kind", sorted(EVENT_KINDS))
def test_signed_callbacks_and_lookups(database_url: str, kind: str, base64_body: bool) -> None:
    settings = serverless_settings(database_url)
    with lambda_instance(settings, kind, base64_body=base64_body) as instance:
        running = instance.post_callback(encode(prediction_body("running")))
        assert (running.status, running.json()["verdict"]) == (200, "stored"), running.body
        completed = encode(prediction_body("completed"))
        answer = instance.post_callback(completed)
        assert answer.status == 200
        assert answer.header("content-type") == "application/json"
        assert answer.json() == {
            "id": "pred_1",
            "status": "completed",
            "duplicate": False,
            "verdict": "updated",
        }
        assert instance.post_callback(completed).json()["verdict"] == "duplicate"

        unsigned = instance.post_callback(completed, signed=False)
        assert unsigned.status == 401
        assert unsigned.header("content-type") == "application/problem+json"
        # Text, not base64: a REST API without binary media types passes it on verbatim.
        assert not unsigned.base64_encoded
        assert unsigned.json()["status"] == 401

        got = instance.get("/v1/predictions/pred_1")
        assert got.status == 200, got.body
        assert (got.json()["id"], got.json()["status"]) == ("pred_1", "completed")
        assert got.json()["response"] == {"total": 42.5, "currency": "EUR"}
        listed = instance.get("/v1/predictions", "status=completed&limit=5")
        assert [p["id"] for p in listed.json()] == ["pred_1"]
        assert instance.get("/v1/predictions/pred_1", auth=False).status == 401
        assert instance.get("/v1/predictions/nope").status == 404

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            (row,) = connection.execute(sa.select(*PREDICTION_READ)).mappings()
            verdicts = connection.execute(sa.select(DELIVERY.c.verdict).order_by(DELIVERY.c.id))
            assert [v for (v,) in verdicts] == ["stored", "updated", "duplicate", "rejected"]
    finally:
        engine.dispose()
    assert (row["status"], row["submission_id"], row["delivery_count"]) == ("completed", "sub_1", 2)


def _table_rows(database_url: str) -> dict[str, list[dict[str, object]]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            tables = {"prediction": PREDICTION, "delivery": DELIVERY, "event": EVENT}
            rows = {
                name: [
                    dict(r)
                    for r in connection.execute(sa.select(t).order_by(*t.primary_key)).mappings()
                ]
                for name, t in tables.items()
            }
    finally:
        engine.dispose()
    for delivery in rows["delivery"]:
        # The platform and a socket carry different transport headers; the rest must agree.
        assert isinstance(delivery["headers"], dict)
        assert "x-vlmrun-signature" in delivery["headers"]
        del delivery["headers"]
    return rows


@pytest.fixture
def second_postgres_url(postgres_template: str) -> Iterator[str]:
    """Another fresh, migrated database, for comparing two deployments' rows."""
    name = f"vlmhooks_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE {postgres_template}")  # type: ignore[arg-type]
    yield f"{POSTGRES_ADMIN_DSN.rpartition('/')[0]}/{name}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]


@pytest.mark.postgres
def test_inline_commit_stores_what_the_group_committer_stores(
    postgres_url: str, second_postgres_url: str
) -> None:
    """Same write code path: the same deliveries leave identical rows either way."""
    bodies = [
        encode(prediction_body("running")),
        encode(prediction_body("completed")),
        encode(prediction_body("completed")),
        encode(prediction_body("pending")),  # stale
        encode(prediction_body("failed", prediction_id="pred_2")),
        b"{not json",  # a rejected delivery, logged through the writer too
    ]
    # pred_2 comes through its own callback URL: a URL binds to its first prediction.
    submissions = ["sub_1"] * 4 + ["sub_2", "sub_1"]
    clock = lambda: FROZEN_NOW  # noqa: E731
    with lambda_instance(serverless_settings(postgres_url), clock=clock) as instance:
        serverless = [
            instance.post_callback(body, submission_id=sub).status
            for body, sub in zip(bodies, submissions, strict=True)
        ]

    settings = receiver_settings(second_postgres_url, vlmrun_webhook_secrets=(WEBHOOK_SECRET,))
    with running_receiver(settings, clock=clock) as receiver:
        threaded = [
            receiver.post(
                receiver.token(sub),
                body,
                headers={"x-vlmrun-signature": sign_vlmrun(WEBHOOK_SECRET, body)},
            ).status_code
            for body, sub in zip(bodies, submissions, strict=True)
        ]
    assert serverless == threaded == [200, 200, 200, 200, 200, 400]
    assert _table_rows(postgres_url) == _table_rows(second_postgres_url)


@pytest.mark.postgres
def test_nothing_outlives_an_invocation_and_the_connection_is_reused(postgres_url: str) -> None:
    database = postgres_url.rpartition("/")[2]
    threads_before = set(threading.enumerate())
    with (
        lambda_instance(serverless_settings(postgres_url)) as instance,
        psycopg.connect(postgres_url, application_name=PROBE_APPLICATION) as probe,
    ):
        for index in range(5):
            body = encode(prediction_body("completed", f"pred_{index}"))
            answer = instance.post_callback(body, submission_id=f"sub_{index}")
            assert answer.status == 200
            assert instance.get(f"/v1/predictions/pred_{index}").status == 200
            # Between invocations: no task left on the loop, and no thread (no writer; the
            # worker threads reads ran in are stopped when the invocation's task ends).
            assert not asyncio.all_tasks(asyncio.get_event_loop())
            assert _threads_settle(threads_before)
        backends = probe.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = %s AND pid <> "
            "pg_backend_pid()",
            (database,),
        ).fetchall()
    # One connection, kept by the instance from one invocation to the next; no LISTEN one.
    assert backends == [("",)]


def _threads_settle(expected: set[threading.Thread], timeout: float = 5.0) -> bool:
    """Whether the running threads come back to `expected` (stopped threads take a moment)."""
    deadline = time.monotonic() + timeout
    while set(threading.enumerate()) != expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_wait_polls_without_a_hub(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "DEFAULT_POLL_INTERVAL", 0.1)
    engine = make_engine(database_url)

    def complete_elsewhere() -> None:
        # Another instance's commit: nothing in this one is told, it must poll.
        ingest_prediction(
            engine,
            orjson.loads(encode(prediction_body("completed", "pred_w"))),
            submission_id=None,
            source="callback",
        )

    try:
        with lambda_instance(serverless_settings(database_url)) as instance:
            started = time.monotonic()
            missing = instance.get("/v1/predictions/pred_w", "wait=0.3")
            assert missing.status == 404
            assert time.monotonic() - started >= 0.3
            with after(0.3, complete_elsewhere):
                found = instance.get("/v1/predictions/pred_w", "wait=10")
            assert (found.status, found.json()["status"]) == (200, "completed")
    finally:
        engine.dispose()


def _frames(body: bytes) -> list[dict[str, str]]:
    frames = []
    for chunk in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in chunk.splitlines() if ": " in line)
        if "data" in fields:
            frames.append(fields)
    return frames


def test_event_stream_ends_after_the_first_events(database_url: str) -> None:
    """A platform buffers the whole response: the stream answers like a long poll."""
    settings = serverless_settings(database_url, max_wait=1)
    with lambda_instance(settings) as instance:
        for prediction_id in ("e1", "e2"):
            body = encode(prediction_body("completed", prediction_id))
            assert instance.post_callback(body, submission_id=prediction_id).status == 200
        started = time.monotonic()
        answer = instance.get("/v1/events", "after=0")
        assert time.monotonic() - started < 1.0  # events were there: no waiting out max_wait
        assert answer.status == 200
        assert answer.header("content-type") == "text/event-stream; charset=utf-8"
        frames = _frames(answer.body)
        assert [orjson.loads(f["data"])["id"] for f in frames] == ["e1", "e2"]
        last = frames[-1]["id"]

        started = time.monotonic()
        idle = instance.get("/v1/events", f"after={last}")
        assert idle.status == 200 and _frames(idle.body) == []
        assert idle.body.startswith(b"retry: ")
        assert 1.0 <= time.monotonic() - started < 5.0

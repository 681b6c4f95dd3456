"""Through a real PgBouncer in transaction mode (`VLMHOOKS_DB_POOLER=transaction`): ingest,
lookups, `?wait`, SSE, concurrent duplicates and Standard Webhooks replays, both from Lambda
instances (inline commits) and from a server (group commit), with polling instead of LISTEN."""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import sqlalchemy as sa

from receiver.live import events as events_module
from receiver.live.events import LISTEN_APPLICATION_NAME
from tests.receiver.callback_harness import (
    LOOKUP_KEY,
    encode,
    prediction_body,
    receiver_settings,
    running_receiver,
)
from tests.receiver.lambda_events import LambdaAnswer
from tests.receiver.lookup_support import EventReader, after
from tests.receiver.serverless_support import (
    LambdaInstance,
    lambda_instance,
    serverless_settings,
)
from vlmhooks.settings import Settings
from vlmhooks.store.db import make_engine
from vlmhooks.store.ingest_one import ingest_prediction
from vlmhooks.store.tables import DELIVERY, PREDICTION
from vlmhooks.trust.signatures import standard_webhook_headers

pytestmark = pytest.mark.postgres

WHSEC = "whsec_" + base64.b64encode(b"pgbouncer-standard-webhooks-key!").decode()
INSTANCES = 6
AUTH = {"Authorization": f"Bearer {LOOKUP_KEY}"}


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without LISTEN, readers poll; a short interval keeps the tests quick.
    monkeypatch.setattr(events_module, "DEFAULT_POLL_INTERVAL", 0.1)


def _open_server_connections(pooled_url: str, count: int = 3) -> None:
    """Make PgBouncer open `count` server connections for this database.

    Handed out in turn (`server_round_robin`), they put a client's consecutive transactions
    on different backends, so session state or a server-side prepared statement would fail
    here as it does under load, deterministically.
    """
    connections = [psycopg.connect(pooled_url, prepare_threshold=None) for _ in range(count)]
    try:
        pids = {c.execute("SELECT pg_backend_pid()").fetchone() for c in connections}
        assert len(pids) == count
        for connection in connections:
            # Ended cleanly, the server connections go back to the pool (a client leaving
            # mid-transaction would make PgBouncer close its server connection instead).
            connection.commit()
    finally:
        for connection in connections:
            connection.close()


def _pooled_settings(url: str, **overrides: Any) -> Settings:
    return serverless_settings(url, db_pooler="transaction", **overrides)


def _rows(direct_url: str, table: sa.Table) -> list[sa.RowMapping]:
    engine = make_engine(direct_url)
    try:
        with engine.connect() as connection:
            # Predictions by their id: the primary key (row_key) is the order of insertion,
            # which concurrent callbacks make arbitrary.
            order = [PREDICTION.c.id] if table is PREDICTION else list(table.primary_key)
            query = sa.select(table).order_by(*order)
            return list(connection.execute(query).mappings())
    finally:
        engine.dispose()


def _listeners(direct_url: str) -> list[Any]:
    database = direct_url.rpartition("/")[2]
    with psycopg.connect(direct_url, autocommit=True) as probe:
        return probe.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            (database, LISTEN_APPLICATION_NAME),
        ).fetchall()


def test_the_pooler_is_in_transaction_mode(pooled_postgres_url: str) -> None:
    """The setup is real: clients share backends, so a server-side prepared statement breaks."""
    with (
        psycopg.connect(pooled_postgres_url, autocommit=True, prepare_threshold=0) as eager,
        psycopg.connect(pooled_postgres_url, prepare_threshold=None) as holder,
    ):
        (first,) = eager.execute("SELECT pg_backend_pid()").fetchone() or ()
        # The only idle server connection is the one `eager` just used: `holder` gets it.
        (held,) = holder.execute("SELECT pg_backend_pid() AS held").fetchone() or ()
        assert held == first
        # `eager` prepared its statement on that backend; the one it gets now never saw it.
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            eager.execute("SELECT pg_backend_pid()")
        (second,) = (
            eager.execute("SELECT pg_backend_pid() AS again", prepare=False).fetchone() or ()
        )
        assert second != first
        holder.rollback()


def test_lambda_instances_through_pgbouncer(pooled_postgres_url: str, postgres_url: str) -> None:
    settings = _pooled_settings(pooled_postgres_url, max_wait=1)
    _open_server_connections(pooled_postgres_url)
    with lambda_instance(settings) as instance:
        # More deliveries than psycopg's prepare threshold (5): every statement repeats.
        for index in range(8):
            # One callback URL per prediction: a URL binds to the first prediction it stores.
            sub = f"sub_p{index}"
            running = instance.post_callback(
                encode(prediction_body("running", f"p{index}")), submission_id=sub
            )
            assert running.json()["verdict"] == "stored", running.body
            done = encode(prediction_body("completed", f"p{index}"))
            verdict = instance.post_callback(done, submission_id=sub).json()["verdict"]
            assert verdict == "updated"
            verdict = instance.post_callback(done, submission_id=sub).json()["verdict"]
            assert verdict == "duplicate"
            got = instance.get(f"/v1/predictions/p{index}")
            assert (got.status, got.json()["status"]) == (200, "completed")
        listed = instance.get("/v1/predictions", "limit=3")
        assert [p["id"] for p in listed.json()] == ["p7", "p6", "p5"]
        # The next page's URL is in the Link header; its query is all a Lambda event needs.
        next_url = httpx.URL(re.fullmatch(r'<(.*)>; rel="next"', listed.header("link"))[1])
        second_page = instance.get("/v1/predictions", next_url.query.decode())
        assert [p["id"] for p in second_page.json()] == ["p4", "p3", "p2"]

        # ?wait: another instance commits meanwhile; this one polls the pooled database.
        def other_instance_completes() -> None:
            with lambda_instance(settings) as other:
                body = encode(prediction_body("completed", "waited"))
                assert other.post_callback(body, submission_id="sub_w").status == 200

        with after(0.3, other_instance_completes):
            waited = instance.get("/v1/predictions/waited", "wait=10")
        assert (waited.status, waited.json()["status"]) == (200, "completed")

        stream = instance.get("/v1/events", "after=0")
        ids = [
            orjson.loads(line[6:])["id"]
            for line in stream.body.decode().splitlines()
            if line.startswith("data: ")
        ]
        assert ids[:2] == ["p0", "p0"] and ids[-1] == "waited" and len(ids) == 17
    assert _listeners(postgres_url) == []


def _each_in_its_own_instance(
    settings: Settings, calls: list[Callable[[LambdaInstance], LambdaAnswer]]
) -> list[LambdaAnswer]:
    """Run each call in a Lambda instance of its own, all released at once."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[LambdaInstance], LambdaAnswer]) -> LambdaAnswer:
        with lambda_instance(settings) as instance:
            instance.get("/healthz", auth=False)  # built and warm before the race
            barrier.wait(timeout=30)
            return call(instance)

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_concurrent_duplicates_from_many_instances(
    pooled_postgres_url: str, postgres_url: str
) -> None:
    settings = _pooled_settings(pooled_postgres_url)
    body = encode(prediction_body("completed", "dup"))
    answers = _each_in_its_own_instance(
        settings, [lambda i: i.post_callback(body) for _ in range(INSTANCES)]
    )
    verdicts = sorted(answer.json()["verdict"] for answer in answers)
    assert verdicts == ["duplicate"] * (INSTANCES - 1) + ["stored"]
    (row,) = _rows(postgres_url, PREDICTION)
    assert (row["id"], row["status"], row["delivery_count"]) == ("dup", "completed", 1)
    assert len(_rows(postgres_url, DELIVERY)) == INSTANCES


def test_standard_webhooks_replays_across_instances(
    pooled_postgres_url: str, postgres_url: str
) -> None:
    """One webhook-id, sent to several instances at once: stored once, the rest replays."""
    settings = _pooled_settings(pooled_postgres_url, standard_webhook_secrets=(WHSEC,))
    body = encode(prediction_body("completed", "replayed"))
    headers = standard_webhook_headers(WHSEC, "msg_replayed", int(time.time()), body)
    answers = _each_in_its_own_instance(
        settings,
        [lambda i: i.post_callback(body, extra_headers=headers) for _ in range(INSTANCES)],
    )
    assert all(answer.status == 200 for answer in answers)
    stored = [d["verdict"] for d in _rows(postgres_url, DELIVERY)]
    assert sorted(stored) == ["replay"] * (INSTANCES - 1) + ["stored"]
    (row,) = _rows(postgres_url, PREDICTION)
    assert row["delivery_count"] == 1


def test_a_server_through_pgbouncer(pooled_postgres_url: str, postgres_url: str) -> None:
    """Group commit, ?wait and SSE behind the pooler; readers poll, nothing LISTENs."""
    settings = receiver_settings(pooled_postgres_url, db_pooler="transaction")
    _open_server_connections(pooled_postgres_url)
    writer = make_engine(pooled_postgres_url, pooler="transaction")

    def elsewhere(prediction_id: str, status: str) -> Callable[[], None]:
        def store() -> None:
            payload = orjson.loads(encode(prediction_body(status, prediction_id)))
            ingest_prediction(writer, payload, submission_id=None, source="callback")

        return store

    try:
        with running_receiver(settings) as receiver:
            bodies = [
                encode(prediction_body(s, f"c{n % 4}"))
                for n in range(32)
                for s in ("running", "completed")
            ]

            def post(body: bytes) -> int:
                return receiver.post(
                    receiver.token(f"sub_{orjson.loads(body)['id']}"), body
                ).status_code

            with ThreadPoolExecutor(16) as pool:
                assert set(pool.map(post, bodies)) == {200}
            rows = _rows(postgres_url, PREDICTION)
            assert [(r["id"], r["status"]) for r in rows] == [
                (f"c{n}", "completed") for n in range(4)
            ]
            assert len(_rows(postgres_url, DELIVERY)) == 64

            with after(0.3, elsewhere("w1", "completed")):
                waited = receiver.client.get(
                    "/v1/predictions/w1", params={"wait": 10}, headers=AUTH
                )
            assert waited.json()["status"] == "completed"

            stream_timeout = httpx.Timeout(10.0)
            with receiver.client.stream(
                "GET", "/v1/events", headers=AUTH, timeout=stream_timeout
            ) as response:
                reader = EventReader(response)
                elsewhere("s1", "running")()
                elsewhere("s1", "completed")()
                received = reader.events(2)
            assert [(e.event, orjson.loads(e.data)["id"]) for e in received] == [
                ("prediction.running", "s1"),
                ("prediction.completed", "s1"),
            ]
            assert _listeners(postgres_url) == []
    finally:
        writer.dispose()

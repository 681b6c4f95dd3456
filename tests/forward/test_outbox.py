"""The outbox itself: written with the change or not at all, claimed one row per prediction
at a time, claimed by one relay only, dead-lettered at the maximum age."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from schemas.contract import PredictionResponse, utc_now
from tests.receiver.callback_harness import prediction_body
from vlmhooks.forward.backoff import Backoff
from vlmhooks.forward.destinations import Destination, parse_destinations
from vlmhooks.forward.publish import Attempt, Message
from vlmhooks.forward.registry import sync_destinations
from vlmhooks.forward.relay import Relay, RelayConfig
from vlmhooks.store.batch import apply_prediction_write
from vlmhooks.store.ingest_one import ingest_prediction
from vlmhooks.store.outbox import OUTBOX, claim, with_payloads
from vlmhooks.store.records import DeliveryRecord, PredictionWrite
from vlmhooks.store.tables import PREDICTION

LEASE = timedelta(seconds=30)


def _register(engine: Engine, forward_to: str) -> tuple[Destination, ...]:
    destinations = parse_destinations(forward_to)
    with engine.begin() as connection:
        sync_destinations(connection, destinations, utc_now())
    return destinations


def _store(engine: Engine, prediction_id: str, status: str, **fields: object) -> None:
    ingest_prediction(
        engine, prediction_body(status, prediction_id, **fields), submission_id=None, source="poll"
    )


def _rows(engine: Engine) -> list[sa.RowMapping]:
    with engine.connect() as connection:
        return list(connection.execute(sa.select(OUTBOX).order_by(OUTBOX.c.id)).mappings())


def test_no_destination_no_rows_and_one_row_per_change_per_destination(engine: Engine) -> None:
    _store(engine, "pred_before", "running")
    assert _rows(engine) == []
    a, b = _register(engine, "http://a.example/h,http://b.example/h?events=prediction.completed")
    _store(engine, "pred_1", "running")
    _store(engine, "pred_1", "running")  # a duplicate is no change: no row
    _store(engine, "pred_1", "completed")
    rows = _rows(engine)
    assert [(r["destination_id"], r["type"]) for r in rows] == [
        (a.id, "prediction.running"),
        (a.id, "prediction.completed"),
        (b.id, "prediction.completed"),
    ]
    # One message id per change, shared by the destinations it goes to.
    assert rows[1]["message_id"] == rows[2]["message_id"] != rows[0]["message_id"]
    # Keyed by the prediction's row, as its events and deliveries are.
    with engine.connect() as connection:
        key = connection.execute(
            sa.select(PREDICTION.c.row_key).where(PREDICTION.c.id == "pred_1")
        ).scalar_one()
    assert [r["prediction_key"] for r in rows] == [key] * 3


def test_rows_roll_back_with_their_change(engine: Engine) -> None:
    _register(engine, "http://a.example/h")
    write = PredictionWrite(
        prediction=PredictionResponse.model_validate(prediction_body("running", "pred_1")),
        submission_id=None,
        source="poll",
        received_at=utc_now(),
        delivery=DeliveryRecord(body_sha256="0" * 64),
    )
    with pytest.raises(RuntimeError), engine.begin() as connection:
        apply_prediction_write(connection, write)
        assert connection.execute(sa.select(sa.func.count()).select_from(OUTBOX)).scalar() == 1
        raise RuntimeError("the change's transaction fails")
    assert _rows(engine) == []


def test_a_later_status_waits_for_the_earlier_one(engine: Engine) -> None:
    (destination,) = _register(engine, "http://a.example/h")
    for status in ("pending", "running", "completed"):
        _store(engine, "pred_1", status)
    _store(engine, "pred_2", "running")
    now = utc_now()
    with engine.begin() as connection:
        first = claim(connection, destination.id, now=now, lease=LEASE, owner="a", limit=10)
        again = claim(connection, destination.id, now=now, lease=LEASE, owner="b", limit=10)
    assert [(c.prediction_id, c.type) for c in first] == [
        ("pred_1", "prediction.pending"),
        ("pred_2", "prediction.running"),
    ]
    assert again == []  # leased, and pred_1's later rows wait behind its first
    assert first[0].attempts == 1
    with engine.connect() as connection:
        (payload, _) = with_payloads(connection, first)
    data = orjson.loads(payload.data_json)
    assert data["status"] == "pending" and data["id"] == "pred_1"


@pytest.mark.postgres
def test_concurrent_claims_on_postgresql_skip_each_others_rows(postgres_url: str) -> None:
    from vlmhooks.store.db import make_engine

    engine = make_engine(postgres_url)
    try:
        (destination,) = _register(engine, "http://a.example/h")
        for n in range(40):
            _store(engine, f"pred_{n}", "running")
        barrier = threading.Barrier(2)
        claimed: dict[str, list[int]] = {}

        def claimer(owner: str) -> None:
            with engine.begin() as connection:
                barrier.wait()
                rows = claim(
                    connection, destination.id, now=utc_now(), lease=LEASE, owner=owner, limit=25
                )
                claimed[owner] = [row.id for row in rows]

        threads = [threading.Thread(target=claimer, args=(o,)) for o in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not set(claimed["a"]) & set(claimed["b"])
        assert len(claimed["a"]) + len(claimed["b"]) == 40
    finally:
        engine.dispose()


class FailingPublisher:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def publish(self, message: Message) -> Attempt:
        self.messages.append(message)
        return Attempt("retry", "HTTP 503", retry_after=7.0)

    async def aclose(self) -> None:
        return None


def test_retries_back_off_then_dead_letter_at_the_maximum_age(engine: Engine) -> None:
    (destination,) = _register(engine, "http://a.example/h")
    _store(engine, "pred_1", "completed")
    written = utc_now()
    offset = [0.0]
    publisher = FailingPublisher()
    relay = Relay(
        engine,
        [destination],
        {destination.id: publisher},
        config=RelayConfig(max_age=60, backoff=Backoff(initial=1, maximum=4)),
        clock=lambda: written.timestamp() + offset[0],
        jitter=lambda: 0.0,
    )
    first = asyncio.run(relay.run_round(destination))
    assert (first.attempted, first.retried, first.retry_after) == (1, 1, 7.0)
    (row,) = _rows(engine)
    # Retry-After (7 s) beats the backoff (0.5 s), and the lease is released.
    assert row["lease_until"] is None and row["last_error"] == "HTTP 503"
    assert _as_utc(row["next_attempt_at"]) - written >= timedelta(seconds=7)
    assert asyncio.run(relay.run_round(destination)).attempted == 0  # not due yet
    offset[0] = 61.0
    last = asyncio.run(relay.run_round(destination))
    assert (last.attempted, last.dead) == (1, 1)
    (row,) = _rows(engine)
    assert row["state"] == "dead" and row["attempts"] == 2
    assert [m.id for m in publisher.messages] == [row["message_id"]] * 2  # one stable id


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)

"""A batch applied by `apply_prediction_writes` ends exactly as the same writes applied one by
one: same verdicts, rows, links and audit log, including repeated ids, conflicts and replays
inside one batch."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.receiver.callback_harness import prediction_body
from vlmhooks.errors import PredictionConflict
from vlmhooks.ingest.prediction import validate_prediction
from vlmhooks.ingest.storable import storable_content
from vlmhooks.public import public_prediction
from vlmhooks.store import migrate
from vlmhooks.store.batch import (
    BatchDiverged,
    PredictionBatch,
    apply_prediction_writes,
)
from vlmhooks.store.db import make_engine
from vlmhooks.store.records import DeliveryRecord, IngestOutcome, PredictionWrite
from vlmhooks.store.tables import (
    DELIVERY,
    EVENT,
    PREDICTION,
    PREDICTION_READ,
    PREDICTION_RESPONSE,
    SUBMISSION,
    WEBHOOK_MESSAGE,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
# Each scenario is 40 random writes; 400 seeds passed when this was written, 8 run in CI.
SEEDS = 8
STATUSES = ["enqueued", "pending", "running", "paused", "completed", "failed"]
SCHEMA = {"type": "object", "required": ["total", "vendor"]}


@pytest.fixture
def twin_engines(database_url: str, tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """The parametrized database for the batch, and a SQLite file for the reference run."""
    reference_url = f"sqlite:///{tmp_path / 'reference.db'}"
    engines = (make_engine(database_url), make_engine(reference_url))
    migrate.upgrade(engines[1])
    yield engines
    for engine in engines:
        engine.dispose()


def _reset(engine: Engine) -> None:
    """Empty tables, then three submissions: one with a schema, one bound, one unbound."""
    with engine.begin() as connection:
        for table in (DELIVERY, EVENT, PREDICTION, SUBMISSION, WEBHOOK_MESSAGE):
            connection.execute(table.delete())
        for sid, bound, schema in [("s1", None, SCHEMA), ("s2", "p2", None), ("s3", None, None)]:
            connection.execute(
                SUBMISSION.insert().values(
                    id=sid,
                    request_id=f"r_{sid}",
                    domain="document.invoice",
                    json_schema=schema,
                    prediction_id=bound,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )


def _random_writes(rng: random.Random, count: int) -> list[PredictionWrite]:
    writes = []
    for n in range(count):
        status = rng.choice(STATUSES)
        body = prediction_body(status, prediction_id=rng.choice(["p1", "p2", "p3"]))
        if rng.random() < 0.3:
            body["response"] = {"total": rng.choice([1, 2])}  # same status, new content
        webhook_id = rng.choice([None, None, "m1", "m2", "m3"])
        writes.append(
            PredictionWrite(
                prediction=validate_prediction(body),
                submission_id=rng.choice([None, "s1", "s2", "s3", "s_without_row"]),
                source="callback",
                # Distinct times, so a row's first receive time and each event's copy of it
                # are checked too.
                received_at=NOW + timedelta(seconds=n),
                delivery=DeliveryRecord(body_sha256=f"{n:064d}", body=str(n).encode()),
                webhook_id=webhook_id,
            )
        )
    return writes


def _summary(outcome: IngestOutcome | PredictionConflict) -> tuple[Any, ...]:
    if isinstance(outcome, PredictionConflict):
        return ("conflict", outcome.detail)
    return (outcome.verdict, outcome.status, outcome.schema_valid)


def _state(engine: Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        predictions = connection.execute(
            sa.select(
                PREDICTION.c.id,
                PREDICTION.c.status,
                PREDICTION_RESPONSE,
                PREDICTION.c.delivery_count,
                PREDICTION.c.received_at,
                PREDICTION.c.updated_at,
                PREDICTION.c.submission_id,
                PREDICTION.c.schema_valid,
            ).order_by(PREDICTION.c.id)
        ).all()
        submissions = connection.execute(
            sa.select(SUBMISSION.c.id, SUBMISSION.c.prediction_id, SUBMISSION.c.status).order_by(
                SUBMISSION.c.id
            )
        ).all()
        deliveries = connection.execute(
            sa.select(
                DELIVERY.c.verdict,
                DELIVERY.c.prediction_id,
                DELIVERY.c.submission_id,
                DELIVERY.c.http_status,
                DELIVERY.c.reason,
                DELIVERY.c.body,
            ).order_by(DELIVERY.c.id)
        ).all()
        events = connection.execute(
            sa.select(EVENT.c.prediction_id, EVENT.c.type, EVENT.c.data).order_by(EVENT.c.seq)
        ).all()
        # Every change's event carries the GET shape; the last one must be what GET says now.
        gets = {
            row.id: public_prediction(row._mapping)
            for row in connection.execute(sa.select(*PREDICTION_READ))
        }
    last_events = {row.prediction_id: row.data for row in events}
    for prediction_id, data in last_events.items():
        if data["vlmhooks"]["submission_id"] is None:
            # Stored without a submission, then claimed by a callback URL whose delivery
            # changed nothing: ownership moves without a change event, by design.
            data["vlmhooks"]["submission_id"] = gets[prediction_id]["vlmhooks"]["submission_id"]
    assert last_events == gets
    return {
        "predictions": [tuple(map(_utc, row)) for row in predictions],
        "submissions": [tuple(row) for row in submissions],
        "deliveries": [tuple(row) for row in deliveries],
        # What each change said (the GET shape: counts, first receive time), in commit order
        # per prediction.
        "events": sorted(
            (
                row.prediction_id,
                index,
                row.type,
                orjson.dumps(row.data, option=orjson.OPT_SORT_KEYS),
            )
            for index, row in _per_prediction_order(events)
        ),
    }


def _utc(value: Any) -> Any:
    # PostgreSQL reads back aware times, SQLite naive UTC ones: compare the instants.
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _per_prediction_order(rows: list[Any]) -> Iterator[tuple[int, Any]]:
    seen: dict[str, int] = {}
    for row in rows:
        seen[row.prediction_id] = seen.get(row.prediction_id, -1) + 1
        yield seen[row.prediction_id], row


def test_a_batch_ends_as_the_same_writes_one_by_one(twin_engines: tuple[Engine, Engine]) -> None:
    for seed in range(SEEDS):
        _check_one_scenario(*twin_engines, seed)


def _check_one_scenario(batched_engine: Engine, reference_engine: Engine, seed: int) -> None:
    for engine in (batched_engine, reference_engine):
        _reset(engine)
    writes = _random_writes(random.Random(seed), 40)

    with batched_engine.begin() as connection:
        batched = apply_prediction_writes(connection, writes)
    one_by_one = []
    for write in writes:
        with reference_engine.begin() as connection:
            one_by_one.extend(apply_prediction_writes(connection, [write]))

    for write, batch_outcome, reference_outcome in zip(writes, batched, one_by_one, strict=True):
        # Replays included: each is judged against what was stored when it arrived.
        assert _summary(batch_outcome) == _summary(reference_outcome), (seed, write)
    assert _state(batched_engine) == _state(reference_engine), seed
    verdicts = {o.verdict for o in batched if isinstance(o, IngestOutcome)}
    assert "stored" in verdicts  # the scenario exercised real writes


def test_a_write_behind_the_plans_back_fails_the_batch_before_anything_commits(
    database_url: str,
) -> None:
    """The plan assumes no one writes predictions without the batch's lock; if someone does,
    the upsert's RETURNING disagrees and the batch raises instead of storing a wrong event."""
    engine = make_engine(database_url)
    _reset(engine)
    body = prediction_body("completed", prediction_id="p_sneaky")
    write = PredictionWrite(
        prediction=validate_prediction(body),
        submission_id="s3",
        source="callback",
        received_at=NOW,
        delivery=DeliveryRecord(body_sha256="0" * 64, body=b"{}"),
    )
    with pytest.raises(BatchDiverged), engine.begin() as connection:
        batch = PredictionBatch([write], dialect=engine.dialect.name)
        batch.read(connection)
        batch.plan()  # planned as a first insert...
        # ...but a writer that ignores the lock stores the same id first.
        connection.execute(
            PREDICTION.insert().values(
                id="p_sneaky", status="completed", status_rank=3, created_at=NOW,
                received_at=NOW, updated_at=NOW, delivery_count=1, source="poll",
                body_sha256="f" * 64,
            )
        )  # fmt: skip
        batch.write(connection)
    with engine.connect() as connection:
        stored = connection.execute(sa.select(sa.func.count()).select_from(PREDICTION)).scalar()
        events = connection.execute(sa.select(sa.func.count()).select_from(EVENT)).scalar()
    engine.dispose()
    assert (stored, events) == (0, 0)  # rolled back whole


@pytest.mark.parametrize("where", ["response", "unknown field", "usage"])
def test_a_planned_batch_knows_what_it_will_hand_the_database(
    database_url: str, where: str
) -> None:
    """`payload_bytes` (which keeps a large batch's statements off the event loop) counts
    what the planned statements carry: each write's stored body, and its prediction's JSON
    in its event and, but for the response, in the prediction row."""
    engine = make_engine(database_url)
    _reset(engine)

    def planned(size: int) -> int:
        body = prediction_body("completed", prediction_id=f"p_{size}")
        if where == "response":
            body["response"] = {"total": 1, "vendor": "x" * size}
        elif where == "unknown field":
            body["notes"] = "x" * size
        else:
            body["usage"] = {"credits_used": 1, "element_type": "x" * size}
        prediction = validate_prediction(body)
        content_hash, content_bytes = storable_content(prediction)  # as the request path
        write = PredictionWrite(
            prediction=prediction,
            submission_id=None,
            source="callback",
            received_at=NOW,
            delivery=DeliveryRecord(body_sha256="0" * 64, body=b"y" * size),
            content_sha256=content_hash,
            content_bytes=content_bytes,
        )
        with engine.connect() as connection:
            batch = PredictionBatch([write], dialect=engine.dialect.name)
            batch.read(connection)
            batch.plan()
        return batch.payload_bytes

    small, large = planned(10), planned(100_010)
    engine.dispose()
    assert small > 0
    # 100,000 more bytes of body, and 100,000 more in the event; in the row too, but for the
    # response, which only the event holds.
    grown = 200_000 if where == "response" else 300_000
    assert grown <= large - small < grown + 1_000


def test_json_columns_are_stored_as_text_on_sqlite(tmp_path: Path) -> None:
    """The batch hands SQLite orjson's UTF-8 under `CAST(? AS TEXT)`: the columns hold TEXT,
    as SQLAlchemy's JSON type writes them (a BLOB would read back as bytes and, since
    SQLite 3.45, be taken for JSONB by its JSON functions), and the text is the value's."""
    engine = make_engine(f"sqlite:///{tmp_path / 'text.db'}")
    migrate.upgrade(engine)
    body = prediction_body("completed", prediction_id="p_text")
    body["response"] = {"vendor": "Friedrichstraße €", "lines": [{"n": 1}]}
    write = PredictionWrite(
        prediction=validate_prediction(body),
        submission_id=None,
        source="callback",
        received_at=NOW,
        delivery=DeliveryRecord(
            body_sha256="0" * 64, headers={"content-type": "application/json"}, body=b"{}"
        ),
    )
    with engine.begin() as connection:
        apply_prediction_writes(connection, [write])
    with engine.connect() as connection:
        types = connection.exec_driver_sql(
            "SELECT typeof(p.response), typeof(p.usage), typeof(e.data), typeof(d.headers),"
            " json_extract(e.data, '$.response.vendor')"
            " FROM prediction p JOIN prediction_event e ON e.prediction_id = p.id"
            " JOIN delivery d ON d.prediction_id = p.id"
        ).one()
        row = connection.execute(sa.select(PREDICTION_RESPONSE)).one()
    engine.dispose()
    # The response is stored once, in the event; the row's column stays NULL.
    assert tuple(types) == ("null",) + ("text",) * 3 + ("Friedrichstraße €",)
    assert row.response == body["response"]

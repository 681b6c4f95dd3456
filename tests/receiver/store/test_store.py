"""Forward-only upsert semantics, on a real SQLite file and the real PostgreSQL server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vlmhooks.errors import ContractViolation, PredictionConflict
from vlmhooks.public import public_prediction
from vlmhooks.store.ingest_one import ingest_prediction
from vlmhooks.store.tables import DELIVERY, EVENT, PREDICTION, PREDICTION_READ, SUBMISSION

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _payload(status: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "pred_1",
        "created_at": "2026-11-24T11:59:00Z",
        "status": status,
        "response": {"total": 1} if status == "completed" else None,
        "usage": {"elements_processed": 1, "element_type": "image", "credits_used": 1},
    }
    body.update(extra)
    return body


def _prediction(engine: Engine) -> sa.RowMapping:
    with engine.connect() as connection:
        return connection.execute(sa.select(*PREDICTION_READ)).mappings().one()


def _count(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_first_delivery_is_stored_with_event_and_delivery(engine: Engine) -> None:
    outcome = ingest_prediction(engine, _payload("running"), submission_id=None, source="callback")
    assert (outcome.verdict, outcome.status) == ("stored", "running")
    assert outcome.event_seq is not None
    row = _prediction(engine)
    assert row["status"] == "running" and row["delivery_count"] == 1
    assert _count(engine, EVENT) == 1 and _count(engine, DELIVERY) == 1


def test_status_moves_forward_and_terminal_never_regresses(engine: Engine) -> None:
    ingest = ingest_prediction
    assert ingest(engine, _payload("enqueued"), submission_id=None, source="c").verdict == "stored"
    assert ingest(engine, _payload("running"), submission_id=None, source="c").verdict == "updated"
    assert (
        ingest(engine, _payload("completed"), submission_id=None, source="c").verdict == "updated"
    )
    stale = ingest(engine, _payload("running"), submission_id=None, source="c")
    assert (stale.verdict, stale.status) == ("stale", "completed")
    other_terminal = ingest(engine, _payload("failed"), submission_id=None, source="c")
    assert other_terminal.verdict == "stale"
    row = _prediction(engine)
    assert row["status"] == "completed" and row["response"] == {"total": 1}
    assert row["delivery_count"] == 3
    with engine.connect() as connection:
        verdicts = connection.execute(sa.select(DELIVERY.c.verdict).order_by(DELIVERY.c.id))
        assert [v for (v,) in verdicts] == ["stored", "updated", "updated", "stale", "stale"]
    assert _count(engine, EVENT) == 3


def test_exact_duplicate_changes_nothing(engine: Engine) -> None:
    ingest_prediction(engine, _payload("completed"), submission_id=None, source="callback", now=NOW)
    before = dict(_prediction(engine))
    again = ingest_prediction(engine, _payload("completed"), submission_id=None, source="poll")
    assert again.verdict == "duplicate" and again.event_seq is None
    assert dict(_prediction(engine)) == before
    assert _count(engine, EVENT) == 1 and _count(engine, DELIVERY) == 2


def test_running_and_paused_may_alternate(engine: Engine) -> None:
    ingest_prediction(engine, _payload("running"), submission_id=None, source="c")
    assert ingest_prediction(
        engine, _payload("paused"), submission_id=None, source="c"
    ).verdict == ("updated")
    assert ingest_prediction(
        engine, _payload("pending"), submission_id=None, source="c"
    ).verdict == ("stale")


def test_unknown_fields_round_trip(engine: Engine) -> None:
    body = _payload("completed", domain="document.invoice", model_version="2026-01")
    ingest_prediction(engine, body, submission_id="sub_x", source="callback")
    public = public_prediction(_prediction(engine))
    assert {key: public[key] for key in body} == body
    assert public["vlmhooks"]["submission_id"] == "sub_x"
    assert _prediction(engine)["domain"] == "document.invoice"


def _insert_submission(engine: Engine, **values: Any) -> None:
    row = {
        "id": "sub_1",
        "request_id": "req_1",
        "domain": "document.invoice",
        "batch": True,
        "image_count": 1,
        "created_at": NOW,
        "updated_at": NOW,
    }
    row.update(values)
    with engine.begin() as connection:
        connection.execute(SUBMISSION.insert().values(**row))


def test_conflicting_prediction_id_is_refused(engine: Engine) -> None:
    _insert_submission(engine, prediction_id="pred_other")
    with pytest.raises(PredictionConflict):
        ingest_prediction(engine, _payload("completed"), submission_id="sub_1", source="callback")
    assert _count(engine, PREDICTION) == 0


def test_submission_is_linked_and_schema_checked(engine: Engine) -> None:
    schema = {
        "type": "object",
        "required": ["total", "currency"],
        "properties": {"total": {"type": "number"}, "currency": {"type": "string"}},
    }
    _insert_submission(engine, json_schema=schema)
    outcome = ingest_prediction(
        engine, _payload("completed"), submission_id="sub_1", source="callback"
    )
    assert outcome.schema_valid is False
    row = _prediction(engine)
    assert row["schema_valid"] is False
    assert row["response"] == {"total": 1}  # kept although it fails the check
    assert any("currency" in message for message in row["schema_errors"])
    with engine.connect() as connection:
        submission = connection.execute(sa.select(SUBMISSION)).mappings().one()
    assert submission["prediction_id"] == "pred_1" and submission["status"] == "completed"
    assert row["domain"] == "document.invoice"


def test_contract_violation_lists_fields(engine: Engine) -> None:
    with pytest.raises(ContractViolation) as exc:
        ingest_prediction(
            engine,
            {"status": "done", "usage": {"credits_used": "x"}},
            submission_id=None,
            source="c",
        )
    fields = {error["field"] for error in exc.value.extra["errors"]}
    assert fields == {"id", "status", "usage.credits_used"}
    assert _count(engine, PREDICTION) == 0

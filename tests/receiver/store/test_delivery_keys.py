"""The delivery log keyed by its prediction's row_key, on a real SQLite file and the real
PostgreSQL server: every write path sets the key, every read by prediction id finds the
keyed and the unkeyed rows alike, a deleted row's deliveries stay findable, and the reads
use the two indexes rather than scanning the log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from receiver.ingest.replay import ReplaySelection, select_deliveries
from vlmhooks.reads.history import prediction_history
from vlmhooks.reads.queries import list_deliveries
from vlmhooks.store.audit import log_rejected_delivery
from vlmhooks.store.ingest_one import ingest_prediction
from vlmhooks.store.records import DeliveryRecord
from vlmhooks.store.tables import DELIVERY, PREDICTION, deliveries_of_prediction

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _payload(prediction_id: str, status: str) -> dict[str, Any]:
    return {
        "id": prediction_id,
        "created_at": "2026-12-07T11:59:00Z",
        "status": status,
        "response": {"total": 1} if status == "completed" else None,
        "usage": {"elements_processed": 1, "element_type": "image", "credits_used": 1},
    }


def _refuse(engine: Engine, prediction_id: str) -> None:
    with engine.begin() as connection:
        log_rejected_delivery(
            connection,
            prediction_id=prediction_id,
            submission_id=None,
            source="callback",
            received_at=NOW,
            delivery=DeliveryRecord(body_sha256="0" * 64, body=b"{}"),
            reason="refused for the test",
            http_status=422,
        )


def _keys(engine: Engine) -> list[tuple[str, int | None]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(DELIVERY.c.prediction_id, DELIVERY.c.prediction_key).order_by(DELIVERY.c.id)
        ).all()
    return [(row[0], row[1]) for row in rows]


def _row_key(engine: Engine, prediction_id: str) -> int:
    with engine.connect() as connection:
        key = connection.execute(
            sa.select(PREDICTION.c.row_key).where(PREDICTION.c.id == prediction_id)
        ).scalar_one()
    return int(key)


def _listed(engine: Engine, prediction_id: str) -> list[str]:
    page, _ = list_deliveries(
        engine,
        prediction_id=prediction_id,
        submission_id=None,
        after=None,
        limit=10,
        include_body=False,
    )
    return [delivery["verdict"] for delivery in page]


def _replayable(engine: Engine, prediction_id: str) -> list[str]:
    with engine.connect() as connection:
        rows = select_deliveries(connection, ReplaySelection(prediction_id=prediction_id))
    return [row["verdict"] for row in rows]


def test_every_write_path_keys_a_delivery_by_its_predictions_row(engine: Engine) -> None:
    ingest_prediction(engine, _payload("pred_a", "running"), submission_id=None, source="callback")
    ingest_prediction(engine, _payload("pred_b", "completed"), submission_id=None, source="poll")
    ingest_prediction(
        engine, _payload("pred_a", "completed"), submission_id=None, source="callback"
    )
    _refuse(engine, "pred_a")  # a refusal of a stored prediction: keyed too
    _refuse(engine, "pred_never")  # of a prediction never stored: no key
    a, b = _row_key(engine, "pred_a"), _row_key(engine, "pred_b")
    assert _keys(engine) == [
        ("pred_a", a),
        ("pred_b", b),
        ("pred_a", a),
        ("pred_a", a),
        ("pred_never", None),
    ]
    assert _listed(engine, "pred_a") == ["rejected", "updated", "stored"]
    assert _listed(engine, "pred_b") == ["stored"]
    assert _listed(engine, "pred_never") == ["rejected"]
    assert _replayable(engine, "pred_a") == ["stored", "updated", "rejected"]
    history = prediction_history(engine, "pred_never")
    assert history is not None and history["prediction"] is None
    assert [d["verdict"] for d in history["deliveries"]] == ["rejected"]


def test_a_refusal_logged_before_its_prediction_was_stored_is_still_found(engine: Engine) -> None:
    _refuse(engine, "pred_late")
    ingest_prediction(engine, _payload("pred_late", "completed"), submission_id=None, source="poll")
    assert _keys(engine) == [("pred_late", None), ("pred_late", _row_key(engine, "pred_late"))]
    assert _listed(engine, "pred_late") == ["stored", "rejected"]
    history = prediction_history(engine, "pred_late")
    assert history is not None and history["prediction"] is not None
    assert [d["verdict"] for d in history["deliveries"]] == ["stored", "rejected"]


def test_deleting_a_prediction_row_unkeys_its_deliveries_and_they_stay_findable(
    engine: Engine,
) -> None:
    for status in ("running", "completed"):
        ingest_prediction(engine, _payload("pred_x", status), submission_id=None, source="callback")
    ingest_prediction(engine, _payload("pred_y", "completed"), submission_id=None, source="poll")
    y = _row_key(engine, "pred_y")
    with engine.begin() as connection:  # by hand, as an operator might
        connection.execute(PREDICTION.delete().where(PREDICTION.c.id == "pred_x"))
    assert _keys(engine) == [("pred_x", None), ("pred_x", None), ("pred_y", y)]
    assert _listed(engine, "pred_x") == ["updated", "stored"]
    assert _replayable(engine, "pred_x") == ["stored", "updated"]
    assert _listed(engine, "pred_y") == ["stored"]
    # Stored again (a replay of its log), it takes a new key; its old deliveries still count.
    ingest_prediction(engine, _payload("pred_x", "completed"), submission_id=None, source="replay")
    assert _listed(engine, "pred_x") == ["stored", "updated", "stored"]


def _plan(engine: Engine, query: sa.Select[Any]) -> str:
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(explain + sql).all()
    return "\n".join(str(row[-1]) for row in rows)


def test_reads_by_prediction_id_use_the_two_indexes_not_a_scan(engine: Engine) -> None:
    # Enough rows that a scan would cost the planner more than the indexes.
    ingest_prediction(engine, _payload("pred_k", "completed"), submission_id=None, source="poll")
    key = _row_key(engine, "pred_k")
    rows = [
        {
            "prediction_key": key + 1 + n if n % 2 else None,
            "prediction_id": f"pred_{n:05}",
            "received_at": NOW,
            "verdict": "stored",
            "http_status": 200,
            "source": "callback",
            "body_sha256": "0" * 64,
            "body_truncated": False,
        }
        for n in range(3000)
    ]
    with engine.begin() as connection:
        connection.execute(DELIVERY.insert(), rows)
        connection.exec_driver_sql("ANALYZE")
    query = (
        sa.select(DELIVERY.c.id)
        .where(deliveries_of_prediction("pred_k"))
        .order_by(DELIVERY.c.id.desc())
        .limit(10)
    )
    plan = _plan(engine, query)
    assert "ix_delivery_prediction_key" in plan, plan
    assert "ix_delivery_unkeyed_prediction_id" in plan, plan
    assert "SCAN delivery" not in plan and "Seq Scan on delivery" not in plan, plan

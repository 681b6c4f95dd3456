"""The response stored once, in the write's event, on a real SQLite file and the real
PostgreSQL server: the row's column stays NULL, every read serves the newest event's
response, and a row that still holds its response inline is served as it is until its
next change clears it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vlmhooks.reads.activity import OverviewFilters, latest_predictions
from vlmhooks.reads.history import prediction_history
from vlmhooks.reads.queries import PredictionFilters, get_prediction, list_predictions
from vlmhooks.store.ingest_one import ingest_prediction
from vlmhooks.store.tables import EVENT, PREDICTION

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _payload(prediction_id: str, status: str, response: Any) -> dict[str, Any]:
    return {
        "id": prediction_id,
        "created_at": "2026-12-07T11:59:00Z",
        "status": status,
        "response": response,
        "usage": {"elements_processed": 1, "element_type": "image", "credits_used": 1},
    }


def _ingest(engine: Engine, prediction_id: str, status: str, response: Any) -> None:
    ingest_prediction(
        engine, _payload(prediction_id, status, response), submission_id=None, source="callback"
    )


def _inline(engine: Engine, prediction_id: str) -> Any:
    """The row's own response column, as SQL sees it: None when it is SQL NULL."""
    with engine.connect() as connection:
        return connection.execute(
            sa.select(sa.cast(PREDICTION.c.response, sa.Text)).where(
                PREDICTION.c.id == prediction_id
            )
        ).scalar_one()


def _every_read(engine: Engine, prediction_id: str) -> list[Any]:
    """The response as GET, the list, the history page and the console's overview serve it."""
    got = get_prediction(engine, prediction_id)
    listed, _ = list_predictions(engine, PredictionFilters(), None, 100)
    history = prediction_history(engine, prediction_id)
    with engine.connect() as connection:
        overview = latest_predictions(connection, OverviewFilters(), 100)
    assert got is not None and history is not None and history["prediction"] is not None
    return [
        got["response"],
        next(p["response"] for p in listed if p["id"] == prediction_id),
        history["prediction"]["response"],
        next(p["response"] for p in overview if p["id"] == prediction_id),
    ]


@pytest.mark.parametrize(
    "response",
    [
        {"total": 42.5, "lines": [{"n": 1, "text": "Friedrichstraße €"}]},
        "a plain string response",
        [1, 2.5, 12345678901234567890],
        None,
    ],
    ids=["object", "string", "array", "null"],
)
def test_the_row_holds_no_response_and_every_read_serves_the_events(
    engine: Engine, response: Any
) -> None:
    _ingest(engine, "pred_1", "running", None)
    _ingest(engine, "pred_1", "completed", response)
    assert _inline(engine, "pred_1") is None
    assert _every_read(engine, "pred_1") == [response] * 4
    # Each event keeps the response of its own moment: the running one had none.
    with engine.connect() as connection:
        kept = connection.execute(sa.select(EVENT.c.data).order_by(EVENT.c.seq)).scalars().all()
    assert [data["response"] for data in kept] == [None, response]


def test_a_response_held_inline_is_served_until_the_next_change_clears_it(
    engine: Engine,
) -> None:
    _ingest(engine, "pred_old", "running", None)
    # As rows written before the response moved to the event hold it: inline.
    with engine.begin() as connection:
        connection.execute(
            PREDICTION.update()
            .where(PREDICTION.c.id == "pred_old")
            .values(response={"kept": "inline"})
        )
    assert _every_read(engine, "pred_old") == [{"kept": "inline"}] * 4
    _ingest(engine, "pred_old", "completed", {"total": 7})
    assert _inline(engine, "pred_old") is None
    assert _every_read(engine, "pred_old") == [{"total": 7}] * 4
    # A stale delivery changes nothing: the newest event's response stays.
    _ingest(engine, "pred_old", "running", {"stale": True})
    assert _every_read(engine, "pred_old") == [{"total": 7}] * 4

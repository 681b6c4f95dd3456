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


def _plan(engine: Engine, prediction_id: str) -> str:
    from vlmhooks.reads.queries import _PREDICTION_BY_ID

    bound = _PREDICTION_BY_ID.params(prediction_id=prediction_id)
    sql = str(bound.compile(engine, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(explain + sql, ()).all()
    return "\n".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize("analyzed", [False, True], ids=["no statistics", "analyzed"])
def test_the_newest_event_is_found_by_its_index_with_or_without_statistics(
    engine: Engine, analyzed: bool
) -> None:
    """A GET reads one entry of the event feed's (prediction_key, seq) index, never the feed
    backward from its newest row (what PostgreSQL chose on the key alone, without
    statistics, at 366 ms a GET on 101,000 events)."""
    _ingest(engine, "pred_p", "completed", {"total": 1})
    with engine.begin() as connection:
        connection.execute(
            EVENT.insert(),
            [
                {
                    "prediction_key": 10_000 + n,
                    "prediction_id": f"pred_{n}",
                    "type": "prediction.completed",
                    "data": {"response": n},
                    "created_at": NOW,
                }
                for n in range(20_000)
            ],
        )
    # Sizes known, column statistics not (VACUUM counts the pages, only ANALYZE the values):
    # as a server with autovacuum off, or a table not yet analyzed, stands.
    # (SQLite has neither without ANALYZE.)
    if analyzed or engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE" if analyzed else "VACUUM")
    plan = _plan(engine, "pred_p")
    assert "ix_prediction_event_prediction_key_seq" in plan, plan
    assert "prediction_event_pkey" not in plan and "SCAN prediction_event" not in plan, plan
    assert get_prediction(engine, "pred_p") is not None

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import schemas.tables  # noqa: F401
from vlmhooks.store import migrate
from vlmhooks.store.db import make_engine


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("empty_postgres_url"))
    return f"sqlite:///{tmp_path / 'empty.db'}"


def _drift(engine: sa.engine.Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def test_migrated_schema_matches_models(empty_url: str) -> None:
    engine = make_engine(empty_url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.is_at_head(engine)
    assert _drift(engine) == []
    engine.dispose()


def test_migrations_go_down_and_up_again(empty_url: str) -> None:
    engine = make_engine(empty_url)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    tables = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set()
    migrate.upgrade(engine)
    assert migrate.is_at_head(engine)
    assert _drift(engine) == []
    engine.dispose()


def test_drift_is_detected(empty_url: str) -> None:
    """The no-drift check can fail: an extra column in the database shows up."""
    engine = make_engine(empty_url)
    migrate.upgrade(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE prediction ADD COLUMN surprise INTEGER")
    assert _drift(engine) != []
    engine.dispose()


_T = "2026-12-01 10:00:00"


def _fill_before_row_keys(engine: sa.engine.Engine) -> None:
    """Rows as the schema before revision 0005 held them: two predictions, their deliveries
    and events, and a refusal naming a prediction that never got a row."""
    insert_prediction = sa.text(
        "INSERT INTO prediction (id, status, status_rank, created_at, received_at, updated_at,"
        " delivery_count, source, body_sha256) VALUES (:id, 'completed', 3, :t, :t, :t, 1,"
        " 'callback', 'h')"
    )
    insert_delivery = sa.text(
        "INSERT INTO delivery (prediction_id, received_at, verdict, http_status, source,"
        " body_sha256, body_truncated) VALUES (:id, :t, :verdict, :status, 'callback', 'h',"
        " :no)"
    )
    insert_event = sa.text(
        "INSERT INTO prediction_event (prediction_id, type, data, created_at)"
        " VALUES (:id, 'prediction.completed', '{}', :t)"
    )
    with engine.begin() as connection:
        for prediction_id in ("pred-b", "pred-a"):
            connection.execute(insert_prediction, {"id": prediction_id, "t": _T})
            connection.execute(insert_event, {"id": prediction_id, "t": _T})
        for prediction_id, verdict, status in (
            ("pred-a", "stored", 200),
            ("pred-b", "stored", 200),
            ("pred-a", "duplicate", 200),
            ("pred-never", "rejected", 409),
        ):
            connection.execute(
                insert_delivery,
                {"id": prediction_id, "t": _T, "verdict": verdict, "status": status, "no": False},
            )


def _filled_then_upgraded(url: str, revision: str) -> sa.engine.Engine:
    """A database at `revision` holding `_fill_before_row_keys`'s rows, upgraded to head."""
    engine = make_engine(url)
    migrate.upgrade(engine, revision)
    _fill_before_row_keys(engine)
    migrate.upgrade(engine)
    assert _drift(engine) == []
    return engine


def _keys(engine: sa.engine.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return dict(connection.execute(sa.text("SELECT id, row_key FROM prediction")).all())


def test_the_row_key_revision_keys_existing_events_and_every_read_still_finds_them(
    empty_url: str,
) -> None:
    from vlmhooks.reads.history import prediction_history
    from vlmhooks.reads.queries import list_deliveries

    engine = _filled_then_upgraded(empty_url, "0004")
    keys = _keys(engine)
    with engine.connect() as connection:
        events = connection.execute(
            sa.text("SELECT prediction_id, prediction_key FROM prediction_event ORDER BY seq")
        ).all()
    assert len(set(keys.values())) == 2
    assert [tuple(row) for row in events] == [
        ("pred-b", keys["pred-b"]),
        ("pred-a", keys["pred-a"]),
    ]
    history = prediction_history(engine, "pred-a")
    assert history is not None
    assert [d["verdict"] for d in history["deliveries"]] == ["duplicate", "stored"]
    assert len(history["timeline"]) == 1
    refused = prediction_history(engine, "pred-never")
    assert refused is not None and refused["prediction"] is None
    assert [d["verdict"] for d in refused["deliveries"]] == ["rejected"]
    page, _ = list_deliveries(
        engine,
        prediction_id="pred-b",
        submission_id=None,
        after=None,
        limit=10,
        include_body=False,
    )
    assert [d["prediction_id"] for d in page] == ["pred-b"]
    # A new prediction takes a key after every existing one.
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO prediction (id, status, status_rank, created_at, received_at,"
                " updated_at, delivery_count, source, body_sha256) VALUES ('pred-c',"
                " 'completed', 3, :t, :t, :t, 1, 'callback', 'h')"
            ),
            {"t": _T},
        )
        new_key = connection.execute(
            sa.text("SELECT row_key FROM prediction WHERE id = 'pred-c'")
        ).scalar_one()
    assert new_key > max(keys.values())
    migrate.downgrade(engine, "0004")
    with engine.connect() as connection:
        ids = connection.execute(sa.text("SELECT id FROM prediction ORDER BY id")).scalars()
        assert list(ids) == ["pred-a", "pred-b", "pred-c"]
    engine.dispose()


def test_the_delivery_key_revision_keys_existing_deliveries_and_every_read_still_finds_them(
    empty_url: str,
) -> None:
    from receiver.ingest.replay import ReplaySelection, select_deliveries
    from vlmhooks.reads.queries import list_deliveries

    engine = _filled_then_upgraded(empty_url, "0005")
    keys = _keys(engine)
    with engine.connect() as connection:
        deliveries = connection.execute(
            sa.text("SELECT prediction_id, prediction_key FROM delivery ORDER BY id")
        ).all()
        replayable = select_deliveries(connection, ReplaySelection(prediction_id="pred-never"))
    assert [tuple(row) for row in deliveries] == [
        ("pred-a", keys["pred-a"]),
        ("pred-b", keys["pred-b"]),
        ("pred-a", keys["pred-a"]),
        ("pred-never", None),
    ]
    assert [row["verdict"] for row in replayable] == ["rejected"]
    for prediction_id, verdicts in (
        ("pred-a", ["duplicate", "stored"]),
        ("pred-never", ["rejected"]),
    ):
        page, _ = list_deliveries(
            engine,
            prediction_id=prediction_id,
            submission_id=None,
            after=None,
            limit=10,
            include_body=False,
        )
        assert [d["verdict"] for d in page] == verdicts
    migrate.downgrade(engine, "0005")
    indexes = {index["name"] for index in sa.inspect(engine).get_indexes("delivery")}
    assert indexes == {"ix_delivery_prediction_id_received_at", "ix_delivery_submission_id"}
    with engine.connect() as connection:
        count = connection.execute(sa.text("SELECT count(*) FROM delivery")).scalar_one()
    assert count == 4
    engine.dispose()


def test_the_outbox_key_revision_keys_pending_rows_and_the_order_still_holds(
    empty_url: str,
) -> None:
    from datetime import UTC, datetime, timedelta

    from vlmhooks.store.outbox import claim

    engine = make_engine(empty_url)
    migrate.upgrade(engine, "0006")
    _fill_before_row_keys(engine)
    insert_destination = sa.text(
        "INSERT INTO forward_destination (id, kind, target, active, updated_at)"
        " VALUES ('d1', 'http', 'http://a.example/h', :yes, :t)"
    )
    insert_row = sa.text(
        "INSERT INTO forward_outbox (destination_id, message_id, event_seq, prediction_id,"
        " type, state, attempts, created_at, next_attempt_at)"
        " VALUES ('d1', :m, :seq, :id, 'prediction.completed', 'pending', 0, :t, :t)"
    )
    with engine.begin() as connection:
        connection.execute(insert_destination, {"yes": True, "t": _T})
        seqs = dict(
            connection.execute(sa.text("SELECT prediction_id, seq FROM prediction_event")).all()
        )
        # pred-a twice (the second waits for the first), then pred-b.
        for n, prediction_id in enumerate(("pred-a", "pred-a", "pred-b")):
            connection.execute(
                insert_row, {"m": f"m{n}", "seq": seqs[prediction_id], "id": prediction_id, "t": _T}
            )
    migrate.upgrade(engine)
    assert _drift(engine) == []
    keys = _keys(engine)
    with engine.connect() as connection:
        keyed = connection.execute(
            sa.text("SELECT prediction_id, prediction_key FROM forward_outbox ORDER BY id")
        ).all()
    assert [tuple(row) for row in keyed] == [
        ("pred-a", keys["pred-a"]),
        ("pred-a", keys["pred-a"]),
        ("pred-b", keys["pred-b"]),
    ]
    now = datetime(2026, 12, 2, tzinfo=UTC)
    with engine.begin() as connection:
        claimed = claim(connection, "d1", now=now, lease=timedelta(minutes=1), owner="o", limit=10)
    assert [(c.prediction_id, c.message_id) for c in claimed] == [
        ("pred-a", "m0"),
        ("pred-b", "m2"),
    ]  # pred-a's second change waits for its first
    migrate.downgrade(engine, "0006")
    indexes = {index["name"] for index in sa.inspect(engine).get_indexes("forward_outbox")}
    assert "ix_forward_outbox_destination_prediction_id" in indexes
    engine.dispose()

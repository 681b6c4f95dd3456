"""The forward-only rule has one home (vlmhooks/store/forward_only.py) and two forms: the
upsert's WHERE, which the database runs, and `moves_forward`, by which a batch plans. On the
real SQLite and PostgreSQL, both decide alike for every (stored status, incoming status,
same or different content)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Connection, Engine

from schemas.enums import STATUS_RANK, Status
from tests.receiver.callback_harness import prediction_body
from vlmhooks.ingest.prediction import validate_prediction
from vlmhooks.store.batch import PredictionBatch, apply_prediction_writes
from vlmhooks.store.batch_rows import prediction_values
from vlmhooks.store.db import dumps_json_utf8
from vlmhooks.store.forward_only import moves_forward
from vlmhooks.store.raw_sql import run_prepared
from vlmhooks.store.records import DeliveryRecord, IngestOutcome, PredictionWrite
from vlmhooks.store.statements import statements_for

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
STORED_CONTENT, OTHER_CONTENT = "a" * 64, "b" * 64


def _write(status: Status, content: str) -> PredictionWrite:
    # The content hash is given, so "same content" can pair with any two statuses: the
    # rule is over (rank, content), whatever produced them.
    return PredictionWrite(
        prediction=validate_prediction(prediction_body(status.value, prediction_id="p_rule")),
        submission_id=None,
        source="callback",
        received_at=NOW,
        delivery=DeliveryRecord(body_sha256="0" * 64),
        content_sha256=content,
    )


def _decisions(
    connection: Connection, stored: Status, incoming: Status, same: bool
) -> tuple[bool, bool]:
    """(what the batch plans, what the database does) for `incoming` over `stored`, in a
    transaction the caller rolls back."""
    apply_prediction_writes(connection, [_write(stored, STORED_CONTENT)])
    write = _write(incoming, STORED_CONTENT if same else OTHER_CONTENT)
    dialect = connection.dialect.name
    batch = PredictionBatch([write], dialect=dialect)
    batch.read(connection)
    batch.plan()
    (outcome,) = batch.outcomes
    assert isinstance(outcome, IngestOutcome)
    planned = outcome.verdict in ("stored", "updated")
    # The very statement the batch writes with, run alone: does the upsert's WHERE let it in?
    row = prediction_values(write, None, None, None, dumps_json_utf8(write.prediction.response))
    upsert = statements_for(dialect).raw_upsert_prediction.prepare([row])
    applied = bool(run_prepared(connection, upsert))
    return planned, applied


def _agree(engine: Engine, stored: Status, incoming: Status, same: bool) -> None:
    with engine.connect() as connection, connection.begin() as transaction:
        planned, applied = _decisions(connection, stored, incoming, same)
        transaction.rollback()
    assert planned == applied, (stored, incoming, same, planned, applied)
    # And both are the rule as written.
    content = STORED_CONTENT if same else OTHER_CONTENT
    ranks = STATUS_RANK[stored], STATUS_RANK[incoming]
    assert applied == moves_forward(ranks[0], STORED_CONTENT, ranks[1], content)


@settings(max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored=st.sampled_from(Status), incoming=st.sampled_from(Status), same=st.booleans())
def test_the_plan_and_the_upsert_agree_on_every_move(
    engine: Engine, stored: Status, incoming: Status, same: bool
) -> None:
    # Each example in a transaction of its own, rolled back: the engine's database stays empty.
    _agree(engine, stored, incoming, same)


def test_every_pair_of_statuses_is_decided_alike(engine: Engine) -> None:
    """The same check over the whole space (72 cases), so no pair depends on the draw."""
    for stored, incoming, same in itertools.product(Status, Status, (True, False)):
        _agree(engine, stored, incoming, same)


def test_a_terminal_row_never_changes_and_paused_running_trade_places() -> None:
    """The rule's known answers, by name."""
    completed, failed = STATUS_RANK[Status.COMPLETED], STATUS_RANK[Status.FAILED]
    running, paused = STATUS_RANK[Status.RUNNING], STATUS_RANK[Status.PAUSED]
    assert not moves_forward(completed, "x", failed, "y")
    assert not moves_forward(completed, "x", completed, "y")
    assert moves_forward(running, "x", paused, "y")
    assert not moves_forward(running, "x", paused, "x")
    assert moves_forward(STATUS_RANK[Status.ENQUEUED], "x", running, "x")
    assert not moves_forward(running, "x", STATUS_RANK[Status.PENDING], "y")

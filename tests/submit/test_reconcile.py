"""Reconcile against a scripted API: which submissions are polled, and how a pass is counted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from submit.client import VlmRunClient
from submit.errors import AuthenticationError
from submit.reconcile import find_unsettled, parse_duration, reconcile_forever, reconcile_once
from submit.retry import NO_RETRIES
from vlmhooks.store.db import make_engine
from vlmhooks.store.ingest_one import ingest_prediction
from vlmhooks.store.tables import PREDICTION, SUBMISSION

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), ("45", 45), ("1.5m", 90), ("0s", 0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "m", "10 minutes", "-5m", "1w", "5mm"])
def test_parse_duration_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.fixture
def db(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


def add_submission(
    engine: Engine, submission_id: str, prediction_id: str | None, age: timedelta
) -> None:
    with engine.begin() as connection:
        connection.execute(
            SUBMISSION.insert().values(
                id=submission_id,
                request_id=f"req-{submission_id}",
                domain="image.caption",
                prediction_id=prediction_id,
                created_at=NOW - age,
                updated_at=NOW - age,
            )
        )


def api(statuses: dict[str, int | str]) -> Callable[[httpx.Request], httpx.Response]:
    """GET /predictions/{id}: a status string answers 200 with it, an int is an error status."""

    def handle(request: httpx.Request) -> httpx.Response:
        prediction_id = request.url.path.rsplit("/", 1)[1]
        answer = statuses[prediction_id]
        if isinstance(answer, int):
            return httpx.Response(answer, json={"detail": f"answer {answer}"})
        return httpx.Response(
            200,
            json={"id": prediction_id, "status": answer, "response": {"ok": True}},
        )

    return handle


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> VlmRunClient:
    return VlmRunClient(
        "sk", "http://api.test/v1", transport=httpx.MockTransport(handler), retry=NO_RETRIES
    )


def test_only_old_sent_unsettled_submissions_are_found(db: Engine) -> None:
    add_submission(db, "s-old", "p-old", timedelta(hours=1))
    add_submission(db, "s-young", "p-young", timedelta(minutes=1))
    add_submission(db, "s-unsent", None, timedelta(hours=1))
    add_submission(db, "s-done", "p-done", timedelta(hours=1))
    add_submission(db, "s-running", "p-running", timedelta(hours=2))
    ingest_prediction(
        db, {"id": "p-done", "status": "completed"}, submission_id="s-done", source="callback"
    )
    ingest_prediction(
        db, {"id": "p-running", "status": "running"}, submission_id="s-running", source="callback"
    )
    found = find_unsettled(db, older_than=timedelta(minutes=10), now=NOW)
    assert found == [("s-running", "p-running"), ("s-old", "p-old")]


def test_a_pass_counts_healed_pending_and_errors(db: Engine) -> None:
    for name in ("a", "b", "c", "d"):
        add_submission(db, f"s-{name}", f"p-{name}", timedelta(hours=1))
    client = client_for(api({"p-a": "completed", "p-b": "failed", "p-c": "running", "p-d": 404}))
    summary = reconcile_once(db, client, older_than=timedelta(minutes=10), now=NOW)
    assert (summary.checked, summary.healed, summary.pending, summary.errors) == (4, 2, 1, 1)
    assert summary.error_messages == ["p-d: HTTP 404: answer 404"]
    assert str(summary) == "checked 4, healed 2, still pending 1, errors 1"
    with db.connect() as connection:
        stored: dict[str, str] = dict(
            connection.execute(sa.select(PREDICTION.c.id, PREDICTION.c.status)).all()
        )
    assert stored == {"p-a": "completed", "p-b": "failed", "p-c": "running"}
    # The running one is looked at again next time; the settled ones are not.
    assert [s for s, _ in find_unsettled(db, older_than=timedelta(0))] == ["s-c", "s-d"]


def test_a_contract_violation_is_an_error_not_a_crash(db: Engine) -> None:
    add_submission(db, "s-x", "p-x", timedelta(hours=1))
    add_submission(db, "s-y", "p-y", timedelta(hours=1))

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("p-x"):  # answers for another prediction
            return httpx.Response(200, json={"id": "p-other", "status": "completed"})
        return httpx.Response(200, json={"id": "p-y", "status": "completed"})

    summary = reconcile_once(db, client_for(handler), older_than=timedelta(0))
    assert (summary.checked, summary.healed, summary.errors) == (2, 1, 1)
    assert "p-x" in summary.error_messages[0]


def test_a_rejected_key_aborts_the_pass(db: Engine) -> None:
    add_submission(db, "s-a", "p-a", timedelta(hours=1))
    with pytest.raises(AuthenticationError):
        reconcile_once(db, client_for(api({"p-a": 401})), older_than=timedelta(0))


def test_forever_runs_on_a_fixed_period(db: Engine) -> None:
    sleeps: list[float] = []
    passes: list[int] = []
    reconcile_forever(
        db,
        client_for(api({})),
        every=60.0,
        on_pass=lambda summary: passes.append(summary.checked),
        sleep=sleeps.append,
        passes=3,
    )
    assert passes == [0, 0, 0]
    assert len(sleeps) == 2
    assert all(59.0 < delay <= 60.0 for delay in sleeps)

"""`submit.lookup`: the wait loop on a scripted source and a fake clock; the database source."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from submit.lookup import DatabaseSource, is_terminal, wait_for_predictions
from vlmhooks.reads.pagination import MAX_LIMIT
from vlmhooks.store.db import make_engine
from vlmhooks.store.tables import DELIVERY, SUBMISSION

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedSource:
    """Answers each prediction from its own list of statuses (None: not stored yet)."""

    name = "scripted"

    def __init__(self, clock: FakeClock, script: dict[str, list[str | None]]) -> None:
        self.clock = clock
        self.script = script
        self.waits: list[float] = []

    def prediction(self, prediction_id: str, *, wait: float = 0) -> dict[str, Any] | None:
        self.waits.append(wait)
        self.clock.now += 0.01  # one read takes a little time
        statuses = self.script[prediction_id]
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return None if status is None else {"id": prediction_id, "status": status}


def test_waits_until_every_prediction_is_terminal() -> None:
    clock = FakeClock()
    source = ScriptedSource(
        clock, {"a": [None, "running", "completed"], "b": ["enqueued", "failed"]}
    )
    outcome = wait_for_predictions(
        source, ["a", "b", "a"], timeout=10, poll_interval=0.5, clock=clock, sleep=clock.sleep
    )
    assert outcome.pending == []
    assert outcome.latest == {
        "a": {"id": "a", "status": "completed"},
        "b": {"id": "b", "status": "failed"},
    }
    assert clock.sleeps == [0.5, 0.5]  # two rounds left something pending
    assert source.waits[0] == pytest.approx(10)  # a long-polling source gets the time left


def test_gives_up_at_the_timeout_naming_what_is_pending() -> None:
    clock = FakeClock()
    source = ScriptedSource(clock, {"a": ["running"], "b": ["completed"]})
    outcome = wait_for_predictions(
        source, ["a", "b"], timeout=2, poll_interval=0.5, clock=clock, sleep=clock.sleep
    )
    assert outcome.pending == ["a"]
    assert outcome.latest["a"]["status"] == "running"
    assert clock.now == pytest.approx(102, abs=0.02)
    assert all(sleep <= 0.5 for sleep in clock.sleeps)


def test_unknown_status_is_not_terminal() -> None:
    assert not is_terminal({"status": "paused"})
    assert not is_terminal({})
    assert is_terminal({"status": "completed"})


@pytest.fixture
def migrated(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


def test_database_source_reads_submissions_and_every_delivery(migrated: Engine) -> None:
    count = MAX_LIMIT + 5  # more than one page, and more than a submission's recent history
    with migrated.begin() as connection:
        connection.execute(
            SUBMISSION.insert().values(
                id="sub_1",
                request_id="req-1",
                domain="image.caption",
                batch=True,
                image_count=1,
                created_at=NOW,
                updated_at=NOW,
            )
        )
        connection.execute(
            DELIVERY.insert(),
            [
                {
                    "submission_id": "sub_1",
                    "received_at": NOW,
                    "verdict": "duplicate" if index else "stored",
                    "http_status": 200,
                    "body_sha256": "0" * 64,
                }
                for index in range(count)
            ],
        )
    source = DatabaseSource(migrated)
    deliveries = source.deliveries("sub_1")
    assert len(deliveries) == count
    assert deliveries[0]["verdict"] == "stored"  # oldest first
    assert [d["id"] for d in deliveries] == sorted(d["id"] for d in deliveries)
    assert source.deliveries("sub_other") == []

    found = source.find("sub_1")
    assert found is not None
    assert found["prediction"] is None
    assert found["submission"]["id"] == "sub_1"
    assert source.find("nothing") is None

"""Gauges read from the database at scrape time: overdue callbacks and database readiness."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx

from receiver.app import create_app
from tests.receiver.callback_harness import (
    LOOKUP_KEY,
    prediction_body,
    receiver_settings,
    running_receiver,
)
from tests.servers import free_port, serve

AUTH = {"authorization": f"Bearer {LOOKUP_KEY}"}


def gauge(text: str, name: str) -> float | None:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return None if found is None else float(found.group(1))


def test_only_sent_submissions_without_a_callback_past_the_limit_are_overdue(
    database_url: str,
) -> None:
    now = datetime.now(UTC)
    settings = receiver_settings(database_url, overdue_after="10m", token_max_age=86400)
    with running_receiver(settings) as receiver:
        sent = {"callback_url": "https://hooks.example.com/v1/callbacks/t"}

        def submitted(submission_id: str, minutes_ago: float, **values: object) -> None:
            at = now - timedelta(minutes=minutes_ago)
            receiver.add_submission(submission_id, created_at=at, sent_at=at, **values)

        submitted("sub_overdue", 20, **sent)
        submitted("sub_answered", 20, **sent)
        submitted("sub_recent", 5, **sent)
        submitted("sub_failed", 20, error="the API refused it", **sent)
        submitted("sub_no_callback", 20)
        submitted("sub_expired", 60 * 48, **sent)
        answered = receiver.post_json(prediction_body(), token=receiver.token("sub_answered"))
        assert answered.status_code == 200
        text = receiver.client.get("/metrics", headers=AUTH).text
    assert gauge(text, "vlmhooks_callbacks_overdue") == 1.0
    assert gauge(text, "vlmhooks_database_ready") == 1.0


def test_a_database_that_does_not_answer_reads_as_not_ready() -> None:
    # Nothing listens on this port: every read is refused at once.
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    settings = receiver_settings(unreachable)
    with serve(create_app(settings)) as server:
        answer = httpx.get(f"{server.url}/metrics", headers=AUTH, timeout=10)
    assert answer.status_code == 200
    assert gauge(answer.text, "vlmhooks_database_ready") == 0.0
    assert gauge(answer.text, "vlmhooks_callbacks_overdue") is None
    assert "vlmhooks_callbacks_total" in answer.text  # the process's own counters still there

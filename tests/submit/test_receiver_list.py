"""`ReceiverClient.list_predictions`/`iter_predictions` read the receiver's list in the API's
shape (a plain list) and follow its `Link` header, against a real receiver."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy.engine import Engine

from submit.client import ReceiverClient
from submit.errors import UnexpectedResponse
from tests.receiver.lookup_support import API_KEY, BASE_TIME, prediction, running_receiver
from vlmhooks.store.ingest_one import ingest_prediction


def test_pages_and_iterates_newest_first(database_url: str, engine: Engine) -> None:
    for index in range(5):
        created = BASE_TIME + timedelta(minutes=index)
        status = "failed" if index == 2 else "completed"
        body = prediction(f"r{index}", status, created_at=created)
        ingest_prediction(engine, body, submission_id=None, source="callback")
    with running_receiver(database_url) as server, ReceiverClient(server.url, API_KEY) as client:
        first = client.list_predictions(limit=2)
        second = client.list_predictions(limit=2, cursor=first.next_cursor)
        skipped = client.list_predictions(limit=2, skip=3)
        everything = [p["id"] for p in client.iter_predictions(page_size=2)]
        completed = [
            p["id"] for p in client.iter_predictions(page_size=1, filters={"status": "completed"})
        ]
    assert [p["id"] for p in first.predictions] == ["r4", "r3"]
    assert [p["id"] for p in second.predictions] == ["r2", "r1"]
    assert [p["id"] for p in skipped.predictions] == ["r1", "r0"] and skipped.next_cursor is None
    assert everything == ["r4", "r3", "r2", "r1", "r0"]
    assert completed == ["r4", "r3", "r1", "r0"]


def test_an_old_page_shape_is_an_unexpected_response() -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, json={"data": [], "next_cursor": None})
    )
    with (
        ReceiverClient("http://receiver.test", "k", transport=transport) as client,
        pytest.raises(UnexpectedResponse, match="without a JSON list"),
    ):
        client.list_predictions()

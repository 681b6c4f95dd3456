"""GET /v1/predictions: order, filters, keyset pagination (also under concurrent inserts)."""

from __future__ import annotations

import base64
import threading
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from tests.receiver.lookup_support import BASE_TIME, client, prediction, running_receiver
from vlmhooks.reads.pagination import DeliveryKey, encode_delivery_cursor
from vlmhooks.store.ingest_one import ingest_prediction


def store(engine: Engine, body: dict[str, Any], submission_id: str | None = None) -> None:
    ingest_prediction(engine, body, submission_id=submission_id, source="callback")


def page_through(http: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every row, following the `Link: rel="next"` URLs (the body is a plain list)."""
    rows: list[dict[str, Any]] = []
    response = http.get("/v1/predictions", params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        assert isinstance(body, list)
        rows.extend(body)
        following = response.links.get("next")
        if following is None:
            return rows
        response = http.get(following["url"])


def test_newest_first_with_id_as_tiebreak(database_url: str, engine: Engine) -> None:
    store(engine, prediction("b", created_at=BASE_TIME))
    store(engine, prediction("a", created_at=BASE_TIME))  # same instant: id decides
    store(engine, prediction("c", created_at=BASE_TIME + timedelta(seconds=1)))
    store(engine, prediction("z", created_at=BASE_TIME - timedelta(days=1)))
    with running_receiver(database_url) as server, client(server) as http:
        whole = http.get("/v1/predictions")
        paged = page_through(http, limit=1)
    body = whole.json()
    assert [row["id"] for row in body] == ["c", "b", "a", "z"]
    assert "link" not in whole.headers
    assert [row["id"] for row in paged] == ["c", "b", "a", "z"]
    assert body[0]["vlmhooks"]["terminal"] is True


def test_filters(database_url: str, engine: Engine) -> None:
    store(engine, prediction("p1", "completed", domain="document.invoice"), "sub-1")
    store(engine, prediction("p2", "failed", created_at=BASE_TIME + timedelta(hours=1)))
    store(engine, prediction("p3", "running", created_at=BASE_TIME + timedelta(hours=2)))
    store(
        engine,
        prediction(
            "p4", "completed", created_at=BASE_TIME + timedelta(hours=3), domain="image.caption"
        ),
    )
    with running_receiver(database_url) as server, client(server) as http:

        def ids(**params: Any) -> list[str]:
            return [row["id"] for row in page_through(http, **params)]

        assert ids(status="completed") == ["p4", "p1"]
        assert ids(status="failed") == ["p2"]
        assert ids(domain="document.invoice") == ["p1"]
        assert ids(submission_id="sub-1") == ["p1"]
        assert ids(submission_id="sub-404") == []
        # Half-open: created_after is inclusive, created_before exclusive.
        assert ids(created_after="2026-01-01T01:00:00Z") == ["p4", "p3", "p2"]
        assert ids(created_before="2026-01-01T01:00:00+00:00") == ["p1"]
        assert ids(created_after="2026-01-01T01:00:00", created_before="2026-01-01T03:00:00Z") == [
            "p3",
            "p2",
        ]
        # An offset is honoured: 02:00+01:00 is 01:00Z.
        assert ids(created_after="2026-01-01T02:00:00+01:00", status="failed") == ["p2"]
        assert ids(status="completed", domain="image.caption") == ["p4"]


BAD_PARAMETERS = [
    ("status", "done"),
    ("created_after", "yesterday"),
    ("created_after", ""),
    ("status", ""),
    ("limit", ""),
    ("created_before", "2026-13-01"),
    ("limit", "0"),
    ("limit", "201"),
    ("limit", "ten"),
    ("limit", "-5"),
    ("skip", "-1"),
    ("skip", "ten"),
    ("skip", ""),
    ("skip", "100001"),
    ("offset", "5"),
    ("stauts", "completed"),
    ("next_cursor", "x"),
    ("cursor", "not a cursor!"),
    ("cursor", ""),
    ("cursor", base64.urlsafe_b64encode(b'["p1", "2026-01-01T00:00:00+00:00"]').decode()),
    ("cursor", base64.urlsafe_b64encode(b'["p1", "yesterday", "x"]').decode()),
    ("cursor", base64.urlsafe_b64encode(b'{"created_at": 1}').decode()),
    ("cursor", encode_delivery_cursor(DeliveryKey(5))),
    ("domain", "doc\x00ument"),
]


def test_bad_parameters_are_400_naming_the_parameter(sqlite_url: str) -> None:
    # Validation precedes any database access, so one backend is enough.
    with running_receiver(sqlite_url) as server, client(server) as http:
        for parameter, value in BAD_PARAMETERS:
            response = http.get("/v1/predictions", params={parameter: value})
            assert response.status_code == 400, (parameter, value, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            problem = response.json()
            assert problem["parameter"] == parameter and problem["detail"].startswith(parameter)


def test_tampered_cursor_is_refused(database_url: str, engine: Engine) -> None:
    for index in range(3):
        store(engine, prediction(f"t{index}", created_at=BASE_TIME + timedelta(minutes=index)))
    with running_receiver(database_url) as server, client(server) as http:
        first = http.get("/v1/predictions", params={"limit": 1})
        cursor = httpx.URL(first.links["next"]["url"]).params["cursor"]
        assert http.get("/v1/predictions", params={"cursor": cursor}).status_code == 200
        tampered = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
        truncated = cursor[: len(cursor) // 2]
        for bad in (tampered, truncated, cursor + "!!", "x" * 2000):
            response = http.get("/v1/predictions", params={"cursor": bad})
            assert response.status_code == 400, bad
            assert response.json()["parameter"] == "cursor"


MAX_CONCURRENT_INSERTS = 300


def test_paging_while_inserts_run_skips_and_repeats_nothing(
    database_url: str, engine: Engine
) -> None:
    # Several rows share each created_at, so the id tiebreak is exercised at page borders.
    existing = [f"old-{index:03d}" for index in range(60)]
    for index, prediction_id in enumerate(existing):
        created = BASE_TIME + timedelta(seconds=index // 3)
        store(engine, prediction(prediction_id, created_at=created))

    stop = threading.Event()
    inserted: list[str] = []

    def insert_continuously() -> None:
        index = 0
        # Bounded: a writer faster than the reader would otherwise keep adding rows ahead of
        # it, and the page-through would take as long as the machine is fast.
        while not stop.is_set() and index < MAX_CONCURRENT_INSERTS:
            # Newer, older, and between existing rows: wherever the reader currently is.
            offset = timedelta(seconds=(index * 7) % 40 - 10, microseconds=index)
            prediction_id = f"new-{index:04d}"
            store(engine, prediction(prediction_id, created_at=BASE_TIME + offset))
            inserted.append(prediction_id)
            index += 1

    writer = threading.Thread(target=insert_continuously, daemon=True)
    with running_receiver(database_url) as server, client(server) as http:
        writer.start()
        try:
            while len(inserted) < 5:
                stop.wait(0.01)
            rows = page_through(http, limit=7)
        finally:
            stop.set()
            writer.join(timeout=10)
    ids = [row["id"] for row in rows]
    assert len(inserted) >= 5
    assert len(ids) == len(set(ids)), "a row was repeated"
    assert set(existing) <= set(ids), "a row that existed before paging was skipped"
    keys = [(datetime.fromisoformat(row["created_at"]), row["id"]) for row in rows]
    assert keys == sorted(keys, reverse=True)

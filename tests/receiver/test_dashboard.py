"""GET /dashboard: recent predictions rendered server-side, escaped, live via EventSource."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy.engine import Engine

from receiver.dashboard import DASHBOARD_ROWS
from tests.receiver.lookup_support import API_KEY, AUTH, BASE_TIME, prediction, running_receiver
from vlmhooks.db import make_engine
from vlmhooks.ingest import ingest_prediction

ROW = re.compile(r'<tr data-id="([^"]+)">')


def test_dashboard_lists_recent_predictions_with_badges(database_url: str, engine: Engine) -> None:
    statuses = ["completed", "failed", "running"]
    for index, status in enumerate(statuses):
        created = BASE_TIME + timedelta(minutes=index)
        ingest_prediction(
            engine,
            prediction(f"dash-{index}", status, created_at=created, domain="document.ocr"),
            submission_id=f"sub-{index}",
            source="callback",
        )
    # No "/": an id the lookup API could not address is refused at ingest.
    hostile = '<img src=x onerror="alert(1)">'
    ingest_prediction(
        engine,
        prediction(hostile, created_at=BASE_TIME - timedelta(days=1), domain='"><img src=x>'),
        submission_id=None,
        source="callback",
    )
    with running_receiver(database_url) as server, httpx.Client(base_url=server.url) as http:
        page = http.get("/dashboard", headers=AUTH)
        by_query = http.get("/dashboard", params={"access_token": API_KEY})
        refused = http.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert ROW.findall(html)[:3] == ["dash-2", "dash-1", "dash-0"]  # newest first
    for status in statuses:
        assert f'<span class="badge status-{status}">{status}</span>' in html
    assert "sub-1" in html and "document.ocr" in html
    # Ids and domains come from the network: escaped, never markup.
    assert hostile not in html and "<img src=x>" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    # Live updates: an EventSource on the SSE feed, the key carried as ?access_token=.
    assert "new EventSource(url)" in html and '"/v1/events"' in html
    assert "access_token" in html
    assert by_query.status_code == 200
    assert refused.status_code == 401


def test_dashboard_shows_at_most_the_recent_rows(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        for index in range(DASHBOARD_ROWS + 5):
            created = BASE_TIME + timedelta(seconds=index)
            body = prediction(f"many-{index:03d}", created_at=created)
            ingest_prediction(engine, body, submission_id=None, source="callback")
    finally:
        engine.dispose()
    with running_receiver(sqlite_url) as server, httpx.Client(base_url=server.url) as http:
        html = http.get("/dashboard", headers=AUTH).text
    rows = ROW.findall(html)
    assert len(rows) == DASHBOARD_ROWS
    assert rows[0] == f"many-{DASHBOARD_ROWS + 4:03d}"

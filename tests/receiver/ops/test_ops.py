"""/healthz, /readyz (database reachable, schema at head) and /metrics over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from tests.receiver.lookup_support import AUTH, prediction, running_receiver
from tests.servers import free_port
from vlmhooks.store import migrate
from vlmhooks.store.db import make_engine
from vlmhooks.store.ingest_one import ingest_prediction


def test_healthz_and_readyz(database_url: str) -> None:
    with running_receiver(database_url) as server, httpx.Client(base_url=server.url) as http:
        health = http.get("/healthz")
        ready = http.get("/readyz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "revision": migrate.head_revision()}


@pytest.fixture(params=["sqlite", "postgres"])
def unmigrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database one revision behind head: here, with no schema at all."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        yield str(request.getfixturevalue("empty_postgres_url"))
    else:
        yield f"sqlite:///{tmp_path / 'empty.db'}"


def test_readyz_is_503_until_the_schema_is_at_head(unmigrated_url: str) -> None:
    with running_receiver(unmigrated_url) as server, httpx.Client(base_url=server.url) as http:
        before = http.get("/readyz")
        assert http.get("/healthz").status_code == 200  # alive, just not ready
        engine = make_engine(unmigrated_url)
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()
        after = http.get("/readyz")
    assert before.status_code == 503
    assert before.headers["content-type"] == "application/problem+json"
    problem = before.json()
    assert problem["current_revision"] is None
    assert problem["head_revision"] == migrate.head_revision()
    assert "db upgrade" in problem["detail"]
    assert after.status_code == 200


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    with running_receiver(url) as server, httpx.Client(base_url=server.url) as http:
        response = http.get("/readyz")
    assert response.status_code == 503
    assert "unreachable" in response.json()["detail"]


def test_metrics_exposition(database_url: str, engine: Engine) -> None:
    for index in range(2):
        ingest_prediction(engine, prediction(f"m{index}"), submission_id=None, source="callback")
    ingest_prediction(
        engine, prediction("m-failed", "failed"), submission_id=None, source="callback"
    )
    with running_receiver(database_url) as server, httpx.Client(base_url=server.url) as http:
        response = http.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "vlmhooks_callbacks",
        "vlmhooks_ingest_latency_seconds",
        "vlmhooks_group_commit_batch_size",
        "vlmhooks_predictions",
    ):
        assert f"# TYPE {name}" in text, name
    # Read from the database at scrape time, every status present.
    assert 'vlmhooks_predictions{status="completed"} 2.0' in text
    assert 'vlmhooks_predictions{status="failed"} 1.0' in text
    assert 'vlmhooks_predictions{status="pending"} 0.0' in text

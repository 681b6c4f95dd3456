"""Real concurrency: `vlm-receiver serve --workers 2` as a subprocess on one database (a SQLite
file, then PostgreSQL); duplicates with shuffled statuses over many connections end as one row
per prediction at its true final status."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests import children
from tests.receiver.callback_harness import NEW_KEY, OLD_KEY, encode, mint, prediction_body
from tests.servers import free_port
from vlmhooks.store.db import make_engine
from vlmhooks.store.tables import DELIVERY, EVENT, PREDICTION_READ

PREDICTIONS = 24
STATUSES = ("enqueued", "pending", "running", "completed")
COPIES = 2  # every status delivered twice
CONNECTIONS = 16


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The real CLI with two worker processes; yields its URL and its log file."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("VLMHOOKS_") and key not in ("PORT", "WEB_CONCURRENCY")
    }
    env.update(
        DATABASE_URL=database_url,
        VLMHOOKS_SECRET_KEYS=f"{OLD_KEY},{NEW_KEY}",
        VLMHOOKS_API_KEYS="lookup-key",
        VLMHOOKS_LOG_LEVEL="info",
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["vlm-receiver", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(url, process, log_path)
        yield url, log_path
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        children.reap(process, timeout=20, group=True)


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    ready = 0
    while time.monotonic() < deadline and ready < 2:
        if process.poll() is not None:
            raise AssertionError(f"serve exited early:\n{log_path.read_text()}")
        ready = log_path.read_text().count("Application startup complete")
        time.sleep(0.05)
    assert ready == 2, log_path.read_text()
    assert httpx.post(f"{url}/v1/callbacks/x", content=b"{}").status_code == 401


def test_concurrent_duplicates_end_as_one_row_at_the_final_status(
    database_url: str, served: tuple[str, Path]
) -> None:
    url, log_path = served
    deliveries = [
        (f"sub_{n}", prediction_body(status, prediction_id=f"pred_{n}"))
        for n in range(PREDICTIONS)
        for status in STATUSES
        for _ in range(COPIES)
    ]
    random.Random(7).shuffle(deliveries)
    local = threading.local()
    clients: list[httpx.Client] = []

    def post(delivery: tuple[str, dict[str, object]]) -> tuple[int, str]:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=30)
            clients.append(local.client)
        submission_id, body = delivery
        response = local.client.post(
            f"/v1/callbacks/{mint(submission_id)}",
            content=encode(body),
            headers={"content-type": "application/json"},
        )
        return response.status_code, response.json().get("verdict", response.text)

    try:
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            answers = list(pool.map(post, deliveries))
    finally:
        for client in clients:
            client.close()

    assert {status for status, _ in answers} == {200}
    verdicts = Counter(verdict for _, verdict in answers)
    assert verdicts["stored"] == PREDICTIONS  # exactly one first write per prediction
    assert sum(verdicts.values()) == len(deliveries)

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(*PREDICTION_READ)).mappings().all()
            logged = connection.execute(sa.select(DELIVERY.c.verdict)).scalars().all()
            events = connection.execute(sa.select(sa.func.count()).select_from(EVENT)).scalar()
    finally:
        engine.dispose()
    assert len(rows) == PREDICTIONS
    for row in rows:
        assert row["status"] == "completed", row["id"]
        assert row["response"] == {"total": 42.5, "currency": "EUR"}
        assert row["submission_id"] == row["id"].replace("pred_", "sub_")
    assert Counter(logged) == verdicts  # every acknowledged delivery is in the log
    assert events == verdicts["stored"] + verdicts["updated"]
    worker_pids = set(re.findall(r"Started server process \[(\d+)\]", log_path.read_text()))
    assert len(worker_pids) == 2

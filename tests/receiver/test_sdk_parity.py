"""The public `vlmrun` SDK, unchanged, against a real receiver on loopback: client creation
(`GET /v1/health`), `get`, `list` (the API's plain list with skip/limit) and `wait`.

The SDK runs in its own interpreter and environment (tests/receiver/sdk_venv.py); the
receiver runs in this process under uvicorn, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.engine import Engine

from tests.receiver.lookup_support import API_KEY, BASE_TIME, after, prediction, running_receiver
from tests.receiver.sdk_venv import SdkUnavailable, sdk_python
from vlmhooks.store.ingest_one import ingest_prediction

DRIVER = Path(__file__).with_name("sdk_driver.py")


@pytest.fixture(scope="session")
def sdk() -> Path:
    try:
        return sdk_python()
    except SdkUnavailable as exc:
        pytest.fail(f"the vlmrun SDK could not be installed: {exc}")


def _store(engine: Engine, body: dict[str, Any]) -> None:
    ingest_prediction(engine, body, submission_id=None, source="callback")


@pytest.fixture
def stored(engine: Engine) -> Iterator[list[str]]:
    """Seven predictions, newest first by id: one without usage, one still running."""
    ids = [f"p{index}" for index in range(6, -1, -1)]
    for index in range(7):
        body = prediction(
            f"p{index}",
            "running" if index == 3 else "completed",
            created_at=BASE_TIME + timedelta(minutes=index),
            domain="document.invoice",
        )
        if index == 5:
            body.pop("usage")  # the contract allows it; the SDK needs an object back
        _store(engine, body)
    yield ids


def _drive(
    driver: subprocess.Popen[str], plan: dict[str, Any], engine: Engine
) -> tuple[dict[str, Any], dict[str, Any]]:
    assert driver.stdin is not None and driver.stdout is not None and driver.stderr is not None
    driver.stdin.write(orjson.dumps(plan).decode() + "\n")
    driver.stdin.flush()
    first_line = driver.stdout.readline()
    assert first_line, driver.stderr.read()
    # `wait` polls with `get` every second; the callback lands while it does.
    completed = prediction("p3", created_at=BASE_TIME + timedelta(minutes=3))
    with after(1.5, lambda: _store(engine, completed)):
        driver.stdin.write("go\n")
        driver.stdin.flush()
        second_line = driver.stdout.readline()
    assert second_line, driver.stderr.read()
    assert driver.wait(timeout=30) == 0
    return orjson.loads(first_line), orjson.loads(second_line)


def test_sdk_get_list_and_wait_work_unchanged(
    sdk: Path, engine: Engine, database_url: str, stored: list[str]
) -> None:
    pages = [[0, 10], [0, 3], [3, 3], [6, 3], [7, 3]]
    plan = {"done_id": "p6", "running_id": "p3", "pages": pages}
    with running_receiver(database_url) as server:
        plan.update(api_key=API_KEY, base_url=f"{server.url}/v1")
        with subprocess.Popen(
            [str(sdk), str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as driver:
            try:
                first, second = _drive(driver, plan, engine)
            finally:
                if driver.poll() is None:
                    driver.kill()

    assert first["get"]["id"] == "p6" and first["get"]["status"] == "completed"
    assert first["get"]["response"] == {"text": "result of p6"}
    assert first["get"]["domain"] == "document.invoice"
    assert first["running"]["status"] == "running"
    everything, head, middle, tail, beyond = first["lists"]
    assert [p["id"] for p in everything] == stored
    assert [p["id"] for p in head] == stored[0:3]
    assert [p["id"] for p in middle] == stored[3:6]
    assert [p["id"] for p in tail] == stored[6:]
    assert beyond == []
    # The SDK's own defaults (skip=0, limit=10).
    assert first["default_list"] == stored
    assert first["bad_key"] == "AuthenticationError"
    assert first["missing"] == "ResourceNotFoundError"
    assert second["wait"]["id"] == "p3" and second["wait"]["status"] == "completed"
    assert second["seconds"] >= 1.0

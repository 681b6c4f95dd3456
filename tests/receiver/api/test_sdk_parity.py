"""The public `vlmrun` SDK, unchanged, against a real receiver on loopback: client creation
(`GET /v1/health`), `get`, `list` (the API's plain list with skip/limit) and `wait`; and
`wait` on the receiver right after `image.generate` on the sandbox API (read-through).

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
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.engine import Engine

from sandbox import SandboxConfig, create_sandbox_app
from tests.receiver.lookup_support import (
    API_KEY,
    BASE_TIME,
    after,
    prediction,
    receiver_settings,
    running_receiver,
)
from tests.receiver.sdk_venv import SdkUnavailable, sdk_python
from tests.servers import serve
from vlmhooks.store.ingest_one import ingest_prediction
from vlmhooks.store.tables import DELIVERY
from vlmhooks.trust.tokens import CallbackTokens, mint_callback_url

DRIVER = Path(__file__).parents[1] / "sdk_driver.py"


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


SANDBOX_KEY = "sk-sandbox-sdk"


def _run_driver(sdk: Path, plan: dict[str, Any]) -> dict[str, Any]:
    result = subprocess.run(
        [str(sdk), str(DRIVER)],
        input=orjson.dumps(plan).decode() + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout, result.stderr
    answer: dict[str, Any] = orjson.loads(result.stdout)
    return answer


def test_sdk_wait_right_after_generate_finds_the_prediction_through_read_through(
    sdk: Path, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    """Its first `get` comes before any callback: the receiver asks the API (read-through,
    stored as a poll), and the callback that lands later completes it."""
    image = tmp_path / "red.png"
    Image.new("RGB", (24, 16), (200, 30, 30)).save(image)
    # The model takes a moment, so the prediction is not done when `wait` first asks.
    config = SandboxConfig(api_keys=SANDBOX_KEY, processing_delay=0.5, backoff_base=0.02)
    with serve(create_sandbox_app(config)) as api:
        api_url = f"{api.url}/v1"
        with running_receiver(
            database_url, vlmrun_api_key=SANDBOX_KEY, vlmrun_base_url=api_url
        ) as server:
            tokens = CallbackTokens(list(receiver_settings(database_url).require_secret_keys()))
            plan = {
                "mode": "generate_then_wait",
                "api_url": api_url,
                "api_key": SANDBOX_KEY,
                "base_url": f"{server.url}/v1",
                "receiver_key": API_KEY,
                "callback_url": mint_callback_url(server.url, tokens, "sub-sdk"),
                "image": str(image),
            }
            answer = _run_driver(sdk, plan)
    generated, waited = answer["generated"], answer["wait"]
    assert generated["status"] in ("pending", "enqueued", "running")
    assert waited.get("id") == generated["id"], waited
    assert waited["status"] == "completed" and waited["response"] is not None
    with engine.connect() as connection:
        sources = (
            connection.execute(sa.select(DELIVERY.c.source).order_by(DELIVERY.c.id)).scalars().all()
        )
    # The read-through answered first; the callback (forward-only) completed the row.
    assert sources[0] == "poll" and "callback" in sources

"""`python:package.module:function` destinations: the backend's own code, through the outbox,
with a receiver on loopback on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from receiver.app import create_app
from tests.forward import handlers
from tests.forward.sink import wait_until
from tests.forward.support import AUTH, forward_settings, in_order, running_receiver
from tests.receiver.callback_harness import encode, mint, prediction_body
from tests.servers import serve
from vlmhooks.errors import ConfigError
from vlmhooks.forward.destinations import parse_destinations

STATUSES = ("pending", "running", "completed")
HANDLERS = "python:tests.forward.handlers"


def _by_prediction(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        found[message["data"]["id"]].append(message)
    return found


def test_an_async_handler_gets_every_change_in_order(database_url: str) -> None:
    handlers.reset()
    settings = forward_settings(database_url, f"{HANDLERS}:record")
    with running_receiver(settings) as receiver:
        for status in STATUSES:
            for n in range(3):
                receiver.callback(f"pred_{n}", status)
        wait_until(lambda: len(handlers.received) == 9)
        wait_until(lambda: receiver.forwarding()[0]["backlog"] == 0)
        status = receiver.forwarding()[0]
    assert status["kind"] == "python" and status["target"] == f"{HANDLERS}:record"
    for prediction_id, messages in _by_prediction(handlers.received).items():
        assert [m["data"]["status"] for m in messages] == list(STATUSES), prediction_id
        for message in messages:
            assert set(message) == {"id", "type", "timestamp", "data"}
            assert message["type"] == f"prediction.{message['data']['status']}"
    assert len({m["id"] for m in handlers.received}) == 9


def test_a_raising_handler_is_retried_with_the_same_id_and_in_order(sqlite_url: str) -> None:
    handlers.reset(fail={"pred_f": 2})
    settings = forward_settings(sqlite_url, f"{HANDLERS}:record")
    with running_receiver(settings) as receiver:
        for status in STATUSES:
            receiver.callback("pred_f", status)
        wait_until(lambda: receiver.forwarding()[0]["backlog"] == 0)
    attempts = [m for m in handlers.received if m["data"]["id"] == "pred_f"]
    assert len(attempts) == 3 + 2
    assert attempts[0]["id"] == attempts[1]["id"] == attempts[2]["id"]  # the first, 3 times
    delivered = list(dict.fromkeys(m["id"] for m in attempts))
    statuses = [next(m for m in attempts if m["id"] == i)["data"]["status"] for i in delivered]
    assert statuses == list(STATUSES) and in_order(statuses)


def test_a_handler_that_always_raises_ends_in_the_dead_letters(sqlite_url: str) -> None:
    handlers.reset()
    settings = forward_settings(sqlite_url, f"{HANDLERS}:always_fails", forward_max_age=1)
    with running_receiver(settings) as receiver:
        receiver.callback("pred_d", "completed")
        wait_until(lambda: receiver.forwarding()[0]["dead_letters"] == 1)
        status = receiver.forwarding()[0]
    assert status["last_error"] == "ValueError: this handler never acknowledges"
    assert len({m["id"] for m in handlers.received}) == 1 and len(handlers.received) >= 2


def test_a_plain_function_runs_in_a_thread(sqlite_url: str) -> None:
    handlers.reset()
    settings = forward_settings(sqlite_url, f"{HANDLERS}:record_in_thread")
    with running_receiver(settings) as receiver:
        receiver.callback("pred_t", "completed")
        wait_until(lambda: len(handlers.received) == 1)
    assert handlers.received[0]["data"]["status"] == "completed"
    assert handlers.threads == ["worker thread"]


@pytest.mark.parametrize(
    ("target", "complaint"),
    [
        ("tests.forward.no_such_module:record", "cannot import tests.forward.no_such_module"),
        ("tests.forward.handlers:missing", "tests.forward.handlers has no function missing"),
        ("tests.forward.handlers:not_a_function", "has no function not_a_function"),
    ],
)
def test_a_missing_module_or_function_stops_start_up_naming_it(
    sqlite_url: str, target: str, complaint: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        create_app(forward_settings(sqlite_url, f"python:{target}"))
    message = str(raised.value)
    assert f"python:{target}" in message and complaint in message
    assert "\n" not in message


def test_a_python_destination_is_listed_beside_urls() -> None:
    parsed = parse_destinations(
        f"https://hooks.example.com/x?events=prediction.completed,prediction.failed, "
        f"{HANDLERS}:record?events=prediction.completed"
    )
    assert [d.kind for d in parsed] == ["http", "python"]
    assert parsed[0].filters.events == ("prediction.completed", "prediction.failed")
    assert parsed[1].filters.events == ("prediction.completed",)
    with pytest.raises(ConfigError, match=r"python:package\.module:function"):
        parse_destinations("python:no-colon-here")


def test_a_handler_runs_in_the_relay_of_a_mounted_app(sqlite_url: str) -> None:
    handlers.reset()
    hooks = create_app(forward_settings(sqlite_url, f"{HANDLERS}:record"))
    host = FastAPI(lifespan=hooks.lifespan)
    host.mount("/hooks", hooks)
    token = mint("sub_pred_m", keys=("forward-callback-key",))
    with serve(host) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        wait_until(lambda: client.get("/hooks/v1/forwarding", headers=AUTH).json()["destinations"])
        answer = client.post(
            f"/hooks/v1/callbacks/{token}",
            content=encode(prediction_body("completed", "pred_m")),
            headers={"content-type": "application/json"},
        )
        assert answer.status_code == 200, answer.text
        wait_until(lambda: len(handlers.received) == 1)
    assert handlers.received[0]["data"]["id"] == "pred_m"

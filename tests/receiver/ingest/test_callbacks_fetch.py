"""Fetch-back over real HTTP: the receiver re-reads the prediction from a fake API on loopback
and stores the API's version; an API failure is a 502 and a rejected delivery."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.receiver.callback_harness import (
    assert_ack,
    assert_problem,
    prediction_body,
    receiver_settings,
    running_receiver,
)
from tests.servers import serve


class FakeAPI:
    """`GET /v1/predictions/{id}` answering whatever the test sets, recording the calls."""

    def __init__(self) -> None:
        self.answer: Response = JSONResponse(prediction_body("completed"))
        self.calls: list[tuple[str, str | None]] = []
        self.app = Starlette(routes=[Route("/v1/predictions/{id}", self._get)])

    async def _get(self, request: Request) -> Response:
        self.calls.append((request.path_params["id"], request.headers.get("authorization")))
        return self.answer


@pytest.fixture
def api() -> Iterator[tuple[FakeAPI, str]]:
    fake = FakeAPI()
    with serve(fake.app) as server:
        yield fake, f"{server.url}/v1"


def _settings(database_url: str, base_url: str) -> Any:
    return receiver_settings(
        database_url, fetch_back=True, vlmrun_base_url=base_url, vlmrun_api_key="api-key-1"
    )


def test_fetch_back_stores_the_apis_version(database_url: str, api: tuple[FakeAPI, str]) -> None:
    fake, base_url = api
    with running_receiver(_settings(database_url, base_url)) as receiver:
        # The callback says running; the API already knows it completed.
        response = receiver.post_json(prediction_body("running"))
        assert_ack(response, verdict="stored", status="completed")
        assert fake.calls == [("pred_1", "Bearer api-key-1")]
        (row,) = receiver.predictions()
        assert (row["status"], row["source"]) == ("completed", "fetch")
        assert row["response"] == {"total": 42.5, "currency": "EUR"}
        (delivery,) = receiver.deliveries()
        assert (delivery["verdict"], delivery["source"]) == ("stored", "fetch")


def test_fetch_back_failure_is_502_and_logged(database_url: str, api: tuple[FakeAPI, str]) -> None:
    fake, base_url = api
    with running_receiver(_settings(database_url, base_url)) as receiver:
        fake.answer = Response("upstream down", status_code=503)
        problem = assert_problem(receiver.post_json(prediction_body()), 502, detail_contains="503")
        assert problem["type"].endswith("/fetch-back-failed")
        fake.answer = JSONResponse(prediction_body(prediction_id="pred_someone_else"))
        assert_problem(receiver.post_json(prediction_body()), 502, detail_contains="someone_else")
        fake.answer = Response(b"{not json", media_type="application/json")
        assert_problem(receiver.post_json(prediction_body()), 502, detail_contains="invalid")
        assert receiver.predictions() == []
        deliveries = receiver.deliveries()
        assert [(d["verdict"], d["http_status"]) for d in deliveries] == [("rejected", 502)] * 3
        assert {d["prediction_id"] for d in deliveries} == {"pred_1"}


def test_unreachable_api_is_502(database_url: str) -> None:
    from tests.servers import free_port

    settings = _settings(database_url, f"http://127.0.0.1:{free_port()}/v1")
    with running_receiver(settings) as receiver:
        assert_problem(receiver.post_json(prediction_body()), 502, detail_contains="ConnectError")

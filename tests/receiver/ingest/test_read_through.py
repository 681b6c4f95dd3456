"""Read-through: GET /v1/predictions/{id} for an id not stored asks the VLM Run API (a small
API on loopback here), stores its answer with source `poll`, and a later callback still wins."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver.errors import ReadThroughUnavailable
from receiver.ingest.read_through import ReadThrough
from receiver.writer.auto import committer_for
from receiver.writer.group_commit import GroupCommitter
from tests.receiver.lookup_support import AUTH, prediction, running_receiver
from tests.servers import serve
from vlmhooks.store.db import make_engine
from vlmhooks.store.ingest_one import ingest_prediction
from vlmhooks.store.tables import DELIVERY, PREDICTION

VLMRUN_KEY = "vlmrun-key"


@dataclass
class FakeApi:
    """`GET /v1/predictions/{id}`: answers from `known`, 404 otherwise, or `status` for all."""

    known: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: int | None = None
    delay: float = 0.0
    asked: list[str] = field(default_factory=list)

    async def get(self, request: Request) -> Response:
        assert request.headers["authorization"] == f"Bearer {VLMRUN_KEY}"
        prediction_id = request.path_params["prediction_id"]
        self.asked.append(prediction_id)
        await asyncio.sleep(self.delay)
        if self.status is not None:
            return JSONResponse({"detail": "boom"}, status_code=self.status)
        if prediction_id not in self.known:
            return JSONResponse({"detail": "Not found"}, status_code=404)
        return JSONResponse(self.known[prediction_id])


@pytest.fixture
def api() -> Iterator[tuple[FakeApi, str]]:
    fake = FakeApi()
    app = Starlette(routes=[Route("/v1/predictions/{prediction_id}", fake.get)])
    with serve(app) as server:
        yield fake, f"{server.url}/v1"


def _receiver(database_url: str, base_url: str, **overrides: Any) -> Any:
    return running_receiver(
        database_url, vlmrun_api_key=VLMRUN_KEY, vlmrun_base_url=base_url, **overrides
    )


def test_an_id_not_stored_is_read_from_the_api_stored_as_a_poll_and_a_callback_still_wins(
    api: tuple[FakeApi, str], database_url: str, engine: Engine
) -> None:
    fake, base_url = api
    fake.known["p_new"] = prediction("p_new", "pending")
    with _receiver(database_url, base_url) as server:
        answer = httpx.get(f"{server.url}/v1/predictions/p_new", headers=AUTH, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "pending"
        ingest_prediction(engine, prediction("p_new"), submission_id=None, source="callback")
        again = httpx.get(f"{server.url}/v1/predictions/p_new", headers=AUTH, timeout=10)
        assert again.json()["status"] == "completed"
    assert fake.asked == ["p_new"]  # stored once: the second read is the database's
    with engine.connect() as connection:
        sources = connection.execute(sa.select(DELIVERY.c.source)).scalars().all()
        row = connection.execute(sa.select(PREDICTION.c.status)).scalar_one()
    assert sorted(sources) == ["callback", "poll"] and row == "completed"


def test_404_only_when_the_api_says_404_and_that_answer_is_cached(
    api: tuple[FakeApi, str], database_url: str
) -> None:
    fake, base_url = api
    with _receiver(database_url, base_url) as server:
        for _ in range(3):
            answer = httpx.get(f"{server.url}/v1/predictions/p_none", headers=AUTH, timeout=10)
            assert answer.status_code == 404
            assert "VLM Run API" in answer.json()["detail"]
    assert fake.asked == ["p_none"]


def test_an_api_failure_is_a_502_problem_and_the_switch_turns_it_off(
    api: tuple[FakeApi, str], database_url: str
) -> None:
    fake, base_url = api
    fake.status = 500
    with _receiver(database_url, base_url) as server:
        answer = httpx.get(f"{server.url}/v1/predictions/p_x?wait=1", headers=AUTH, timeout=10)
    assert answer.status_code == 502
    assert answer.headers["content-type"] == "application/problem+json"
    assert "answered 500" in answer.json()["detail"]
    with _receiver(database_url, base_url, read_through=False) as server:
        off = httpx.get(f"{server.url}/v1/predictions/p_y", headers=AUTH, timeout=10)
    assert off.status_code == 404 and fake.asked == ["p_x"]


@pytest.fixture
def writer(sqlite_url: str) -> Iterator[GroupCommitter]:
    engine = make_engine(sqlite_url)
    committer = committer_for(engine, serverless=True)
    committer.start()
    yield committer
    engine.dispose()


@pytest.mark.anyio
async def test_read_throughs_over_the_rate_cap_are_a_503_without_asking_the_api(
    api: tuple[FakeApi, str], writer: GroupCommitter
) -> None:
    fake, base_url = api
    now = [0.0]
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {VLMRUN_KEY}"}) as http:
        reads = ReadThrough(
            http,
            base_url,
            writer,
            delivery_body_cap=1024,
            clock=lambda: now[0],
            rate_per_second=10,
            burst=3,
        )
        for index in range(3):
            assert await reads.fetch_and_store(f"p_{index}") is False  # the API's 404
        with pytest.raises(ReadThroughUnavailable, match="too many read-throughs") as refused:
            await reads.fetch_and_store("p_over")
        now[0] += 0.1  # one token back
        assert await reads.fetch_and_store("p_later") is False
        with pytest.raises(ReadThroughUnavailable):
            await reads.fetch_and_store("p_over_again")
    assert refused.value.status == 503
    assert fake.asked == ["p_0", "p_1", "p_2", "p_later"]


@pytest.mark.anyio
async def test_an_api_that_does_not_answer_in_time_is_a_503(
    api: tuple[FakeApi, str], writer: GroupCommitter
) -> None:
    fake, base_url = api
    fake.delay = 0.5
    headers = {"Authorization": f"Bearer {VLMRUN_KEY}"}
    async with httpx.AsyncClient(headers=headers, timeout=0.05) as http:
        reads = ReadThrough(http, base_url, writer, delivery_body_cap=1024)
        with pytest.raises(ReadThroughUnavailable, match="did not answer in time") as timed_out:
            await reads.fetch_and_store("p_slow")
    assert timed_out.value.status == 503 and fake.asked == ["p_slow"]

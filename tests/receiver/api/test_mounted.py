"""The receiver mounted under `/hooks` in a host app (FastAPI, and plain Starlette with a
lifespan of its own), served by uvicorn on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from receiver.app import create_app
from tests.receiver.callback_harness import (
    JSON_HEADERS,
    LOOKUP_KEY,
    encode,
    prediction_body,
    receiver_settings,
)
from tests.servers import serve

AUTH = {"authorization": f"Bearer {LOOKUP_KEY}"}
PUBLIC_URL = "https://api.example.com/hooks"


def fastapi_host(hooks: Any) -> Any:
    app = FastAPI(lifespan=hooks.lifespan)

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"host": "fastapi"}

    app.mount("/hooks", hooks)
    return app


def starlette_host(hooks: Any) -> Any:
    """A host whose own lifespan runs the receiver's inside it and yields its own state."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with hooks.lifespan(app):
            yield {"host_resource": "kept"}

    async def ping(request: Request) -> JSONResponse:
        return JSONResponse({"host": request.state.host_resource})

    return Starlette(routes=[Route("/ping", ping), Mount("/hooks", app=hooks)], lifespan=lifespan)


@pytest.fixture(params=[fastapi_host, starlette_host], ids=["fastapi", "starlette"])
def host(request: pytest.FixtureRequest, database_url: str) -> Iterator[httpx.Client]:
    settings = receiver_settings(database_url, public_url=PUBLIC_URL)
    with (
        serve(request.param(create_app(settings))) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        yield client


def mint_under_prefix(client: httpx.Client, submission_id: str) -> str:
    """A callback URL minted by the mounted receiver, as a path on this server."""
    minted = client.post(
        "/hooks/v1/callback-urls", json={"submission_id": submission_id}, headers=AUTH
    )
    assert minted.status_code == 201, minted.text
    url: str = minted.json()["callback_urls"][0]["url"]
    assert url.startswith(PUBLIC_URL + "/v1/callbacks/")
    return url.removeprefix("https://api.example.com")


def test_callbacks_lookups_waits_and_events_work_under_the_prefix(host: httpx.Client) -> None:
    answer = host.get("/ping")  # the host's own routes are untouched
    assert answer.status_code == 200
    assert answer.json()["host"] in ("fastapi", "kept")
    assert host.get("/v1/predictions", headers=AUTH).status_code == 404
    path = mint_under_prefix(host, "sub_m")
    running = encode(prediction_body("running"))
    assert host.post(path, content=running, headers=JSON_HEADERS).status_code == 200
    answers: list[httpx.Response] = []
    waiter = threading.Thread(
        target=lambda: answers.append(
            host.get("/hooks/v1/predictions/pred_1", headers=AUTH, params={"wait": "5"})
        )
    )
    waiter.start()
    completed = encode(prediction_body("completed"))
    stored = host.post(path, content=completed, headers=JSON_HEADERS)
    assert stored.status_code == 200, stored.text
    waiter.join(timeout=5)
    assert answers and answers[0].json()["status"] == "completed"
    assert host.get("/hooks/v1/predictions", headers=AUTH).json()[0]["id"] == "pred_1"
    assert host.get("/hooks/readyz").status_code == 200
    with host.stream("GET", "/hooks/v1/events", headers=AUTH, params={"after": "0"}) as stream:
        assert stream.status_code == 200
        seen = ""
        for chunk in stream.iter_text():
            seen += chunk
            if "prediction.completed" in seen:
                break


def test_the_dashboard_links_follow_the_prefix(host: httpx.Client) -> None:
    page = host.get("/hooks/dashboard", headers={"accept": "text/html", **AUTH})
    assert page.status_code == 200
    assert 'href="/hooks/dashboard/static/dashboard.css"' in page.text
    assert '"/dashboard' not in page.text
    script = host.get("/hooks/dashboard/static/common.js")
    assert '"/hooks/dashboard/sign-in"' in script.text
    anonymous = host.get("/hooks/dashboard", headers={"accept": "text/html"})
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/hooks/dashboard/sign-in?")
    signed_in = host.post(
        "/hooks/dashboard/sign-in",
        data={"key": LOOKUP_KEY, "next": "/hooks/dashboard?status=completed"},
    )
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/hooks/dashboard?status=completed"
    assert "Path=/hooks/dashboard" in signed_in.headers["set-cookie"]

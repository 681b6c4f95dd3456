"""Shared pieces of the callback tests: a receiver on loopback, tokens, payloads, DB probes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from receiver.app import create_app
from tests.servers import serve
from vlmhooks.settings import Settings
from vlmhooks.store.db import make_engine
from vlmhooks.store.tables import DELIVERY, PREDICTION, PREDICTION_READ, SUBMISSION
from vlmhooks.trust.tokens import CallbackTokens

OLD_KEY, NEW_KEY = "callback-key-2025", "callback-key-2026"
LOOKUP_KEY = "lookup-key"
# 2026-11-24T12:00:00Z, the frozen "now" of time-sensitive tests.
FROZEN_NOW = 1795521600.0
JSON_HEADERS = {"content-type": "application/json"}


def receiver_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_keys": (OLD_KEY, NEW_KEY),
        "api_keys": (LOOKUP_KEY,),
    }
    values.update(overrides)
    return Settings(**values)


def mint(
    submission_id: str = "sub_1",
    *,
    keys: tuple[str, ...] = (OLD_KEY, NEW_KEY),
    at: float | None = None,
) -> str:
    clock = (lambda: at) if at is not None else time.time
    return CallbackTokens(list(keys), clock=clock).mint(submission_id)


def tampered(token: str) -> str:
    """The token with one payload character changed (the signature no longer matches)."""
    payload, dot, rest = token.partition(".")
    flipped = "B" if payload[1] != "B" else "C"
    return payload[0] + flipped + payload[2:] + dot + rest


def prediction_body(
    status: str = "completed", prediction_id: str = "pred_1", **fields: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": prediction_id,
        "created_at": "2026-11-24T11:59:00Z",
        "completed_at": "2026-11-24T11:59:30Z" if status in ("completed", "failed") else None,
        "status": status,
        "response": {"total": 42.5, "currency": "EUR"} if status == "completed" else None,
        "usage": {"elements_processed": 1, "element_type": "image", "credits_used": 1},
    }
    body.update(fields)
    return body


def encode(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


@dataclass
class Receiver:
    """A running receiver: its URL, an HTTP client, and an engine to look into its database."""

    url: str
    client: httpx.Client
    engine: Engine
    clock: Callable[[], float]

    def token(self, submission_id: str = "sub_1") -> str:
        """A fresh token, minted at the receiver's own "now" (frozen clocks included)."""
        return mint(submission_id, at=self.clock())

    def post(
        self, token: str, content: Any, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        merged = dict(JSON_HEADERS)
        merged.update(headers or {})
        return self.client.post(f"/v1/callbacks/{token}", content=content, headers=merged)

    def post_json(self, body: dict[str, Any], *, token: str | None = None) -> httpx.Response:
        return self.post(token or self.token(), encode(body))

    def predictions(self) -> list[sa.RowMapping]:
        return _rows(self.engine, sa.select(*PREDICTION_READ).order_by(PREDICTION.c.id))

    def deliveries(self) -> list[sa.RowMapping]:
        return _rows(self.engine, sa.select(DELIVERY).order_by(DELIVERY.c.id))

    def add_submission(self, submission_id: str = "sub_1", **values: Any) -> None:
        now = datetime.now(UTC)
        row: dict[str, Any] = {
            "id": submission_id,
            "request_id": f"req_{submission_id}",
            "domain": "document.invoice",
            "batch": True,
            "image_count": 1,
            "created_at": now,
            "updated_at": now,
        }
        row.update(values)
        with self.engine.begin() as connection:
            connection.execute(SUBMISSION.insert().values(**row))

    def submission(self, submission_id: str = "sub_1") -> sa.RowMapping:
        query = sa.select(SUBMISSION).where(SUBMISSION.c.id == submission_id)
        return _rows(self.engine, query)[0]


def _rows(engine: Engine, query: Any) -> list[sa.RowMapping]:
    with engine.connect() as connection:
        return list(connection.execute(query).mappings().all())


@contextmanager
def running_receiver(
    settings: Settings,
    *,
    clock: Callable[[], float] | None = None,
    wrap: Callable[[Any], Any] | None = None,
) -> Iterator[Receiver]:
    clock = clock or time.time
    app = create_app(settings, clock=clock)
    engine = make_engine(settings.database_url)
    try:
        with (
            serve(wrap(app) if wrap is not None else app) as server,
            httpx.Client(base_url=server.url, timeout=20) as client,
        ):
            yield Receiver(server.url, client, engine, clock)
    finally:
        engine.dispose()


def assert_problem(
    response: httpx.Response, status: int, *, detail_contains: str = ""
) -> dict[str, Any]:
    """Every error is RFC 9457 problem+json with type, title, status and detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert problem["status"] == status
    assert detail_contains.lower() in problem["detail"].lower(), problem["detail"]
    return problem


def assert_ack(
    response: httpx.Response, *, verdict: str, status: str, duplicate: bool = False
) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body == {
        "id": body["id"],
        "status": status,
        "duplicate": duplicate,
        "verdict": verdict,
    }

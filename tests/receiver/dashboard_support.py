"""A receiver for the dashboard tests, fed with real signed callbacks at a frozen "now".

The clock is frozen so that "today", "the last hour" and the per-minute buckets hold the
same data on every run, whatever the wall-clock time (midnight UTC included).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import httpx
import orjson
from sqlalchemy.engine import Engine

from receiver.app import create_app
from receiver.live import events
from tests.forward.sink import wait_until
from tests.receiver.lookup_support import TEST_POLL_INTERVAL
from tests.servers import serve
from vlmhooks.settings import Settings
from vlmhooks.store.db import make_engine
from vlmhooks.store.tables import SUBMISSION
from vlmhooks.trust.signatures import sign_vlmrun
from vlmhooks.trust.tokens import CallbackTokens

API_KEY = "dashboard-key-current"
OLD_API_KEY = "dashboard-key-previous"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SECRET_KEY = "dashboard-callback-token-key"
WEBHOOK_SECRET = "dashboard-vlmrun-webhook-secret"
# 2026-11-24T12:00:30Z: mid-minute, mid-day.
FROZEN_NOW = 1795521630.0
NOW = datetime.fromtimestamp(FROZEN_NOW, UTC)
GRACEFUL_SHUTDOWN = 0.3
# A response that would run script if it ever reached the DOM as markup.
HOSTILE_TEXT = '<img src=x onerror="window.__pwned=1"><b>bold</b>'
INVOICE_SCHEMA = {
    "type": "object",
    "required": ["total", "currency"],
    "properties": {"total": {"type": "number"}, "currency": {"type": "string"}},
}


class Clock:
    """A settable clock; the receiver reads it for tokens, sessions and "now"."""

    def __init__(self, now: float = FROZEN_NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class WallClock(Clock):
    """The real time, for tests with forwarding: the relay leases outbox rows by the app's
    clock while the outbox stamps them with the real time, so a clock frozen in the past
    would hold every message back."""

    def __call__(self) -> float:
        return time.time()


def console_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_keys": (SECRET_KEY,),
        "vlmrun_webhook_secrets": (WEBHOOK_SECRET,),
        "api_keys": (OLD_API_KEY, API_KEY),
    }
    values.update(overrides)
    return Settings(**values)


def callback_body(
    prediction_id: str,
    status: str = "completed",
    *,
    domain: str | None = "document.invoice",
    credits: int = 1,
    response: Any = None,
    age: timedelta = timedelta(seconds=20),
) -> dict[str, Any]:
    created = NOW - age
    body: dict[str, Any] = {
        "id": prediction_id,
        "status": status,
        "created_at": created.isoformat(),
        "completed_at": (created + timedelta(seconds=5)).isoformat()
        if status in ("completed", "failed")
        else None,
        "usage": {"elements_processed": 1, "element_type": "image", "credits_used": credits},
        "response": response,
    }
    if domain is not None:
        body["domain"] = domain
    return body


@dataclass
class Console:
    """A running receiver and what a test needs to feed it like the API would."""

    url: str
    engine: Engine
    clock: Clock
    http: httpx.Client
    tokens: CallbackTokens = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = CallbackTokens([SECRET_KEY], clock=self.clock)

    def post(self, submission_id: str, body: Any, *, signed: bool = True) -> httpx.Response:
        """POST a callback exactly as the API does: raw JSON, X-VLMRun-Signature."""
        raw = orjson.dumps(body)
        signature = sign_vlmrun(WEBHOOK_SECRET if signed else "not-the-secret", raw)
        return self.http.post(
            f"/v1/callbacks/{self.tokens.mint(submission_id)}",
            content=raw,
            headers={"content-type": "application/json", "x-vlmrun-signature": signature},
        )

    def deliver(self, submission_id: str, body: dict[str, Any]) -> None:
        answer = self.post(submission_id, body)
        assert answer.status_code == 200, answer.text

    def refuse(self, submission_id: str, body: Any, status: int, *, signed: bool = True) -> None:
        answer = self.post(submission_id, body, signed=signed)
        assert answer.status_code == status, answer.text

    def add_submission(self, submission_id: str, **values: Any) -> None:
        """The row `vlm-submit` records before sending the request."""
        row: dict[str, Any] = {
            "id": submission_id,
            "request_id": f"req_{submission_id}",
            "domain": "document.invoice",
            "prompt": "Extract the invoice total",
            "batch": True,
            "image_count": 1,
            "created_at": NOW - timedelta(minutes=1),
            "sent_at": NOW - timedelta(minutes=1),
            "updated_at": NOW - timedelta(minutes=1),
        }
        row.update(values)
        with self.engine.begin() as connection:
            connection.execute(SUBMISSION.insert().values(**row))

    def fix_json_schema(self, submission_id: str, json_schema: dict[str, Any]) -> None:
        """What an operator does before a replay: correct a submission's json_schema."""
        with self.engine.begin() as connection:
            connection.execute(
                SUBMISSION.update()
                .where(SUBMISSION.c.id == submission_id)
                .values(json_schema=json_schema)
            )


# INVOICE_SCHEMA with the total also allowed as text: the seeded "forty-two" now matches.
RELAXED_INVOICE_SCHEMA = {
    **INVOICE_SCHEMA,
    "properties": {"total": {"type": ["number", "string"]}, "currency": {"type": "string"}},
    "required": ["total"],
}


@contextmanager
def running_console(
    database_url: str, *, clock: Clock | None = None, **overrides: Any
) -> Iterator[Console]:
    """A receiver on loopback, at the frozen time unless a clock is given; a short SQLite
    poll keeps waits short."""
    clock = Clock() if clock is None else clock
    app = create_app(console_settings(database_url, **overrides), clock=clock)
    engine = make_engine(database_url)
    try:
        with (
            mock.patch.object(events, "DEFAULT_POLL_INTERVAL", TEST_POLL_INTERVAL),
            serve(app, log_config=None, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN) as server,
            httpx.Client(base_url=server.url, timeout=30) as http,
        ):
            yield Console(server.url, engine, clock, http)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Seeded:
    """What `seed` stored: ids the tests look for."""

    completed: str = "pred-invoice-ok"
    invalid: str = "pred-invoice-bad-schema"
    failed: str = "pred-ocr-failed"
    running: str = "pred-caption-running"
    ok_submission: str = "sub-invoice-ok"
    invalid_submission: str = "sub-invoice-bad"
    failed_submission: str = "sub-ocr"
    failure: str = "the model ran out of <b>tokens</b>"


def seed(console: Console) -> Seeded:
    """Four predictions and three refusals, all through real signed callbacks.

    completed 2 (document.invoice, 3 + 2 credits; one breaks its json_schema), failed 1
    (document.ocr, 1 credit), running 1 (image.caption, 0 credits); refused: a bad signature,
    a contract violation (422) and a second prediction id for a bound submission (409).
    """
    s = Seeded()
    console.add_submission(s.ok_submission, json_schema=INVOICE_SCHEMA)
    console.add_submission(s.invalid_submission, json_schema=INVOICE_SCHEMA)
    console.add_submission(s.failed_submission, domain="document.ocr", prompt=None)
    # Created 50, 40, 30 and 20 seconds ago: the overview lists them newest first.
    first = timedelta(seconds=50)
    console.deliver(s.ok_submission, callback_body(s.completed, "running", credits=0, age=first))
    good = {"total": 42.5, "currency": "EUR", "note": HOSTILE_TEXT}
    console.deliver(
        s.ok_submission, callback_body(s.completed, response=good, credits=3, age=first)
    )
    bad = {"total": "forty-two"}
    invalid = callback_body(s.invalid, response=bad, credits=2, age=timedelta(seconds=40))
    console.deliver(s.invalid_submission, invalid)
    failure = {"error": s.failure}
    third = timedelta(seconds=30)
    failed = callback_body(s.failed, "failed", domain="document.ocr", response=failure, age=third)
    console.deliver(s.failed_submission, failed)
    running = callback_body(s.running, "running", domain="image.caption", credits=0)
    console.deliver("sub-caption", running)
    console.refuse(s.ok_submission, callback_body(s.completed), 401, signed=False)
    console.refuse(s.failed_submission, {"id": s.failed, "status": "bogus"}, 422)
    console.refuse(s.ok_submission, callback_body("pred-impostor"), 409)
    return s


# Destinations whose credentials the forwarding panel must never show. The brokers' ports are
# closed on purpose: the relay keeps failing, so each row shows a backlog and a last error (a
# client library's error text is where a credential would most likely leak).
FORWARD_SECRET = "whsec_ZGFzaGJvYXJkLWZvcndhcmRpbmctc2VjcmV0"
FORWARD_CREDENTIALS = ("hook-pa55word", "t0ken-value", "amqp-pa55word", "redis-pa55word")
CLOSED_PORT = 1
AMQP_DESTINATION = (
    f"amqp://rabbit:amqp-pa55word@127.0.0.1:{CLOSED_PORT}/vh?exchange=preds&routing_key=all"
)
REDIS_DESTINATION = (
    f"redis://:redis-pa55word@127.0.0.1:{CLOSED_PORT}/0?stream=preds&events=prediction.failed"
)
FAST_FORWARDING = {
    "forward_poll_interval": 0.05,
    "forward_backoff": 0.05,
    "forward_backoff_max": 0.2,
    "forward_timeout": 2.0,
}


def http_destination(sink_url: str) -> str:
    host = sink_url.removeprefix("http://")
    return f"http://hookuser:hook-pa55word@{host}/hook?token=t0ken-value"


def forwarding_overrides(*destinations: str) -> dict[str, Any]:
    return {
        "forward_to": ",".join(destinations),
        "forward_secret": (FORWARD_SECRET,),
        **FAST_FORWARDING,
    }


def forwarding(console: Console) -> list[dict[str, Any]]:
    answer = console.http.get("/v1/forwarding", headers=AUTH)
    assert answer.status_code == 200, answer.text
    destinations: list[dict[str, Any]] = answer.json()["destinations"]
    return destinations


def wait_registered(console: Console, count: int) -> None:
    """The relay registers destinations in the background; changes stored before that are
    not forwarded, so a test that counts a backlog waits for it first."""
    wait_until(lambda: len(forwarding(console)) == count)

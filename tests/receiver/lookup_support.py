"""Helpers for the lookup-API tests: a running receiver, sample predictions, an SSE reader."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import httpx

from receiver.app import create_app
from receiver.live import events
from tests.servers import UvicornThread, serve
from vlmhooks.settings import Settings

API_KEY = "lookup-key-current"
OLD_API_KEY = "lookup-key-previous"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
TEST_POLL_INTERVAL = 0.1
GRACEFUL_SHUTDOWN = 0.3


def receiver_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_keys": ("callback-token-key",),
        "api_keys": (OLD_API_KEY, API_KEY),
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def running_receiver(database_url: str, **overrides: Any) -> Iterator[UvicornThread]:
    """A receiver on loopback.

    `log_config=None` routes uvicorn's logs to pytest's caplog; a short graceful-shutdown
    timeout lets it stop while SSE streams are open; and a short SQLite poll keeps tests
    that write behind the receiver's back (no local wake-up) fast.
    """
    app = create_app(receiver_settings(database_url, **overrides))
    with (
        mock.patch.object(events, "DEFAULT_POLL_INTERVAL", TEST_POLL_INTERVAL),
        serve(app, log_config=None, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN) as server,
    ):
        yield server


def client(server: UvicornThread, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=AUTH, timeout=30, **kwargs)


def prediction(
    prediction_id: str,
    status: str = "completed",
    *,
    created_at: datetime | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A callback body as the API sends it."""
    created = created_at or BASE_TIME
    body: dict[str, Any] = {
        "id": prediction_id,
        "status": status,
        "created_at": created.isoformat(),
        "usage": {"elements_processed": 1, "element_type": "image", "credits_used": 1},
        "response": {"text": f"result of {prediction_id}"} if status == "completed" else None,
    }
    if status in ("completed", "failed"):
        body["completed_at"] = (created + timedelta(seconds=3)).isoformat()
    body.update(fields)
    return body


@contextmanager
def after(delay: float, action: Callable[[], Any]) -> Iterator[None]:
    """Run `action` on another thread after `delay` seconds (e.g. a write while a request
    waits); joined on exit, so the engine it uses is not disposed under it."""

    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(timeout=30)


@dataclass(frozen=True)
class ServerSentEvent:
    id: str | None
    event: str | None
    data: str


class EventReader:
    """Parses an SSE byte stream line by line, keeping comments (keep-alives) apart."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()
        self.comments: list[str] = []
        self.retry: int | None = None

    def next_event(self) -> ServerSentEvent:
        fields: dict[str, str] = {}
        data: list[str] = []
        for line in self.lines:
            if line == "":
                if data:
                    return ServerSentEvent(fields.get("id"), fields.get("event"), "\n".join(data))
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                self.comments.append(value)
            elif name == "data":
                data.append(value)
            elif name == "retry":
                self.retry = int(value)
            else:
                fields[name] = value
        raise EOFError("the stream ended")

    def events(self, count: int) -> list[ServerSentEvent]:
        return [self.next_event() for _ in range(count)]

    def next_comment(self) -> str:
        """Read until the next comment line (skipping events, which must not interleave here)."""
        seen = len(self.comments)
        for line in self.lines:
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            if len(self.comments) > seen:
                return self.comments[-1]
        raise EOFError("the stream ended")

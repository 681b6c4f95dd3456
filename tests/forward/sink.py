"""An HTTP destination for the tests: records every request, answers what the test says."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.servers import serve

DEADLINE_SECONDS = 60.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the sink answered

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def document(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed


Responder = Callable[[Request], tuple[int, dict[str, str]]]


class Sink:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.respond: Responder = lambda _request: (204, {})
        self.url = ""

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        status, headers = self.respond(request)
        with self.lock:
            self.received.append(Received(request.url.path, dict(request.headers), body, status))
        return Response(status_code=status, headers=headers)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._hook, methods=["POST"])])

    def accepted(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [
                r
                for r in self.received
                if 200 <= r.status < 300 and (path is None or r.path == path)
            ]

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def wait_for(
        self, predicate: Callable[[Sink], bool], timeout: float = DEADLINE_SECONDS
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"sink condition not met; received {len(self.all())}")
            time.sleep(0.02)


@contextmanager
def running_sink() -> Iterator[Sink]:
    sink = Sink()
    with serve(sink.app()) as server:
        sink.url = server.url
        yield sink


def wait_until(predicate: Callable[[], bool], timeout: float = DEADLINE_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.02)


def first_deliveries(received: list[Received]) -> list[Received]:
    """Accepted requests, a redelivered message id counted once (at its first arrival)."""
    seen: set[str] = set()
    first = []
    for item in received:
        if item.message_id not in seen:
            seen.add(item.message_id)
            first.append(item)
    return first

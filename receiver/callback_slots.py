"""At most N callbacks in progress per process: memory is bounded by N times the body cap.

A callback is read whole (up to `VLMHOOKS_MAX_BODY_BYTES`), decoded and validated before it
is stored; without a bound, every open connection could hold that much at once. Requests
over the bound wait for a slot without their body being read (uvicorn stops reading a
connection whose buffer is full), and get a 503 with `Retry-After` if none frees in time.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

from receiver.problems import problem_response
from vlmhooks.tokens import CALLBACK_PATH_PREFIX

__all__ = ["SLOT_WAIT_SECONDS", "CallbackSlots"]

# Well inside the sender's 30 s timeout, so a refusal still leaves it time to retry.
SLOT_WAIT_SECONDS = 10.0
RETRY_AFTER_SECONDS = 5


class CallbackSlots:
    def __init__(self, app: ASGIApp, *, limit: int, wait_seconds: float | None = None) -> None:
        self.app = app
        self.limit = limit
        # Read at construction, not bound as a default, so a test can shorten it.
        self.wait_seconds = SLOT_WAIT_SECONDS if wait_seconds is None else wait_seconds
        self._slots: asyncio.Semaphore | None = None  # created on the server's loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(CALLBACK_PATH_PREFIX):
            await self.app(scope, receive, send)
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limit)
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=self.wait_seconds)
        except TimeoutError:
            response = problem_response(
                503,
                "Service Unavailable",
                f"{self.limit} callbacks are already being received; retry shortly",
                slug="busy",
            )
            response.headers["retry-after"] = str(RETRY_AFTER_SECONDS)
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._slots.release()

"""A byte budget for callbacks in progress: what bounds the receiver's memory.

A callback is read whole (up to `VLMHOOKS_MAX_BODY_BYTES`), decoded, validated and stored;
while that happens its data exists several times over (bench/README.md, "Memory worst
case"). Each callback reserves its `Content-Length` (the body cap when it sends none)
from `VLMHOOKS_CALLBACK_BYTES_IN_FLIGHT` before its body is read; the others wait, bodies
unread (uvicorn stops reading a connection whose buffer is full), and get a 503 with
`Retry-After` if no room frees in time. Small callbacks, the common case, run hundreds at
once; a few large ones cannot exhaust memory together. One callback always runs, however
large (the body cap still applies), so a budget below the cap cannot lock callbacks out.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

from receiver.errors import CallbacksBusy
from receiver.http.problems import receiver_error_response
from receiver.state import ReceiverState

__all__ = ["SLOT_WAIT_SECONDS", "ByteBudget", "CallbackSlots"]

# Well inside the sender's 30 s timeout, so a refusal still leaves it time to retry.
SLOT_WAIT_SECONDS = 10.0
RETRY_AFTER_SECONDS = 5


class ByteBudget:
    """A semaphore counted in bytes; first come, first served (no starvation of large ones)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._queue: list[tuple[int, asyncio.Future[None]]] = []

    def _fits(self, size: int) -> bool:
        return self.in_use == 0 or self.in_use + size <= self.capacity

    def try_acquire(self, size: int) -> bool:
        """Take `size` now if it fits and nobody is queued; the common, await-free case."""
        if not self._queue and self._fits(size):
            self.in_use += size
            return True
        return False

    async def acquire(self, size: int) -> None:
        if self.try_acquire(size):
            return
        entry = (size, asyncio.get_running_loop().create_future())
        self._queue.append(entry)
        try:
            await entry[1]
        except BaseException:
            if entry in self._queue:
                self._queue.remove(entry)
            elif entry[1].done() and not entry[1].cancelled():
                self.release(size)  # granted as we gave up: hand it on
            raise

    def release(self, size: int) -> None:
        self.in_use -= size
        while self._queue and self._fits(self._queue[0][0]):
            size_next, future = self._queue.pop(0)
            self.in_use += size_next
            future.set_result(None)


def _reservation(scope: Scope, body_cap: int) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.strip()
            # A malformed or oversized length is the route's 400/413 to give; reserve the cap.
            if text.isdigit():
                return min(int(text), body_cap)
    return body_cap


class CallbackSlots:
    """Wraps the callback endpoint (an ASGI app): a callback runs once its bytes fit."""

    def __init__(
        self, app: ASGIApp, *, budget: int, body_cap: int, wait_seconds: float | None = None
    ) -> None:
        self.app = app
        self.body_cap = body_cap
        self.budget = ByteBudget(budget)
        # Read at construction, not bound as a default, so a test can shorten it.
        self.wait_seconds = SLOT_WAIT_SECONDS if wait_seconds is None else wait_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        size = _reservation(scope, self.body_cap)
        # Without a wait (the common case) no timer and no task: this is the hot path.
        if not self.budget.try_acquire(size):
            try:
                async with asyncio.timeout(self.wait_seconds):
                    await self.budget.acquire(size)
            except TimeoutError:
                await self._refuse_busy(scope, receive, send)
                return
        try:
            await self.app(scope, receive, send)
        finally:
            self.budget.release(size)

    async def _refuse_busy(self, scope: Scope, receive: Receive, send: Send) -> None:
        busy = CallbacksBusy("too many callback bytes are being received at once; retry later")
        state = scope.get("state", {}).get("receiver")
        if isinstance(state, ReceiverState):
            # Before the token check: counted, and logged within the unauthenticated rate.
            state.refusals.record(busy, submission_id=None, prediction_id=None, authenticated=False)
        response = receiver_error_response(busy)
        response.headers["retry-after"] = str(RETRY_AFTER_SECONDS)
        await response(scope, receive, send)

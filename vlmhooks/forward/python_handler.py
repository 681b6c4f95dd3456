"""`python:package.module:function` destinations: the backend's own code, called in the relay's
process with the message every destination gets; returning acknowledges, raising retries."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any, TypedDict

import orjson

from vlmhooks.forward.destinations import Destination, resolve_handler
from vlmhooks.forward.publish import DELIVERED, Attempt, Message, error_text

__all__ = ["HandlerMessage", "PythonPublisher"]


class HandlerMessage(TypedDict):
    id: str  # the same on every attempt: a handler de-duplicates on it
    type: str  # prediction.completed, ...
    timestamp: str
    data: dict[str, Any]


class PythonPublisher:
    def __init__(self, destination: Destination, *, timeout: float) -> None:
        self._function: Callable[[HandlerMessage], Any] = resolve_handler(
            destination.params["function"]
        )
        self._is_async = inspect.iscoroutinefunction(self._function)
        self._timeout = timeout

    async def publish(self, message: Message) -> Attempt:
        # Decoded per call: each handler gets a fresh dict it may change without touching
        # the next attempt's.
        payload = orjson.loads(message.body)
        handed: HandlerMessage = {
            "id": message.id,
            "type": payload["type"],
            "timestamp": payload["timestamp"],
            "data": payload["data"],
        }
        try:
            if self._is_async:
                await asyncio.wait_for(self._function(handed), self._timeout)
            else:
                # A plain function may block (a database, a request): a thread keeps the
                # event loop, and with it the callbacks, moving. Its timeout stops the wait,
                # not the thread.
                call = asyncio.to_thread(self._function, handed)
                await asyncio.wait_for(call, self._timeout)
        except Exception as exc:
            return Attempt("retry", error_text(exc))
        return DELIVERED

    async def aclose(self) -> None:
        return None

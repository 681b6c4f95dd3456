"""Handlers that `python:tests.forward.handlers:<name>` destinations call during the tests.

The relay runs in the test's own process (uvicorn in a thread), so what they record is read
back directly; `reset` starts each test afresh.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

received: list[dict[str, Any]] = []
threads: list[str] = []
failures_left: dict[str, int] = {}
_lock = threading.Lock()


def reset(fail: dict[str, int] | None = None) -> None:
    with _lock:
        received.clear()
        threads.clear()
        failures_left.clear()
        failures_left.update(fail or {})


async def record(message: dict[str, Any]) -> None:
    """Acknowledges everything; fails the first N attempts of a prediction listed in `reset`."""
    with _lock:
        received.append(message)
        prediction_id = message["data"]["id"]
        if failures_left.get(prediction_id, 0) > 0:
            failures_left[prediction_id] -= 1
            raise RuntimeError(f"handler refused {prediction_id}")


def record_in_thread(message: dict[str, Any]) -> None:
    """Records whether it was called on the event loop's thread (it must not be)."""
    try:
        asyncio.get_running_loop()
        where = "event loop"
    except RuntimeError:
        where = "worker thread"
    with _lock:
        received.append(message)
        threads.append(where)


def always_fails(message: dict[str, Any]) -> None:
    with _lock:
        received.append(message)
    raise ValueError("this handler never acknowledges")


not_a_function = 42

"""Database calls bounded by VLMHOOKS_DB_TIMEOUT: one that fails, or does not answer in
time, is `StorageUnavailable` (503 with Retry-After), never a hang nor a 500.

Every read the receiver serves, and every call the forwarding relay makes, runs through
`call_within`, so the rule has one home.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError
from typing_extensions import TypeVarTuple, Unpack

from vlmhooks.errors import StorageUnavailable

__all__ = ["call_within"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


async def call_within(seconds: float, call: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
    """`call(*args)` in a worker thread, answered within `seconds`.

    A call past its time is abandoned, not stopped: no thread can be. It ends on its own
    once libpq's socket options or the pool's checkout timeout fail it
    (vlmhooks/store/db.py), and holds none of the threadpool's slots meanwhile.
    """
    try:
        return await asyncio.wait_for(
            anyio.to_thread.run_sync(call, *args, abandon_on_cancel=True), seconds
        )
    except TimeoutError as exc:
        raise StorageUnavailable(f"the database did not answer within {seconds:g} s") from exc
    except SQLAlchemyError as exc:
        # The driver's message may name hosts and users: the log has it, the answer does not.
        raise StorageUnavailable(f"the database is unavailable ({type(exc).__name__})") from exc

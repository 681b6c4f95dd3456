"""The sandbox as a sender under connection faults: a broken attempt is retried, not fatal.

Found by `test_crash_safety.py`: when the receiver is SIGKILLed just as the sandbox connects,
anyio can raise `AttributeError: 'NoneType' object has no attribute 'getpeername'` from
httpcore's `get_extra_info("ssl_object")` (the socket is already gone). It is not an
`httpx.HTTPError`, so `deliver` let it escape, the delivery task died with "Task exception
was never retrieved", and the callback was never retried nor recorded: silently lost.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from sandbox.delivery import CallbackMessage, DeliveryAttempt, DeliveryPolicy, deliver
from schemas.enums import Status

pytestmark = pytest.mark.anyio

BROKEN_SOCKET = AttributeError("'NoneType' object has no attribute 'getpeername'")


async def test_an_unexpected_transport_error_is_a_failed_attempt_then_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise BROKEN_SOCKET
        return httpx.Response(200, json={"ok": True})

    message = CallbackMessage(
        prediction_id="pred_1",
        status=Status.COMPLETED,
        url="http://127.0.0.1:9/v1/callbacks/token",
        body=b'{"id": "pred_1", "status": "completed"}',
    )
    attempts: list[DeliveryAttempt] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        delivered = await deliver(
            client,
            message,
            DeliveryPolicy(max_attempts=3, backoff_base=0.0),
            record=attempts.append,
            limiter=asyncio.Semaphore(1),
        )
    assert delivered
    assert [(a.attempt, a.ok) for a in attempts] == [(1, False), (2, True)]
    assert attempts[0].error is not None
    assert "AttributeError" in attempts[0].error

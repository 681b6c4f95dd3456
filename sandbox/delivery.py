"""Callback delivery as the real service does it: signed JSON POSTs, a timeout, retries with
exponential backoff; every attempt is reported to the caller as a `DeliveryAttempt`.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from schemas.contract import utc_now
from schemas.enums import Status
from vlmhooks.retry_timing import backoff_delay
from vlmhooks.trust.signatures import VLMRUN_SIGNATURE_HEADER, sign_vlmrun, standard_webhook_headers

__all__ = [
    "DEFAULT_BACKOFF_BASE_SECONDS",
    "DEFAULT_BACKOFF_CAP_SECONDS",
    "DEFAULT_DELIVERY_TIMEOUT_SECONDS",
    "DEFAULT_MAX_ATTEMPTS",
    "USER_AGENT",
    "CallbackMessage",
    "DeliveryAttempt",
    "DeliveryPolicy",
    "callback_body",
    "deliver",
]

# The real service: 2 attempts, 30 s each, exponential backoff (public docs).
DEFAULT_MAX_ATTEMPTS = 2
DEFAULT_DELIVERY_TIMEOUT_SECONDS = 30.0
DEFAULT_BACKOFF_BASE_SECONDS = 1.0
# The real service documents neither a cap nor jitter, so the sandbox adds none: its waits
# are the plain doublings a receiver under test should expect.
DEFAULT_BACKOFF_CAP_SECONDS = math.inf
USER_AGENT = "vlmhooks-sandbox/0.1"


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try and how to sign; secrets stay out of the repr."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_base: float = DEFAULT_BACKOFF_BASE_SECONDS
    backoff_cap: float = DEFAULT_BACKOFF_CAP_SECONDS
    timeout: float = DEFAULT_DELIVERY_TIMEOUT_SECONDS
    vlmrun_secret: str | None = field(default=None, repr=False)
    standard_secret: str | None = field(default=None, repr=False)

    def backoff(self, failed_attempt: int) -> float:
        """Seconds to wait after the `failed_attempt`-th attempt: base, 2*base, 4*base, ...
        up to `backoff_cap`."""
        return backoff_delay(failed_attempt - 1, base=self.backoff_base, cap=self.backoff_cap)


@dataclass(frozen=True)
class CallbackMessage:
    """One status callback, frozen when the status was reached: retries send the same bytes."""

    prediction_id: str
    status: Status
    url: str
    body: bytes

    @property
    def webhook_id(self) -> str:
        # Stable per prediction and status, so retries and duplicates share it (Standard
        # Webhooks receivers de-duplicate on it) and a later status gets a new one.
        return f"msg_{self.prediction_id}_{self.status.value}"


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST of a callback; `status_code` is None when the transport failed (`error`)."""

    prediction_id: str
    prediction_status: Status
    url: str
    webhook_id: str
    copy: int  # 1 unless the duplicate fault sends the message more than once
    attempt: int  # 1-based within one copy's retry cycle
    started_at: datetime
    finished_at: datetime
    headers: Mapping[str, str]
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def to_json(self) -> dict[str, Any]:
        return {
            "prediction_id": self.prediction_id,
            "prediction_status": self.prediction_status.value,
            "url": self.url,
            "webhook_id": self.webhook_id,
            "copy": self.copy,
            "attempt": self.attempt,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "status_code": self.status_code,
            "error": self.error,
            "ok": self.ok,
            "headers": dict(self.headers),
        }


def callback_body(prediction: Mapping[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed): compact UTF-8 JSON."""
    return json.dumps(prediction, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signed_headers(message: CallbackMessage, policy: DeliveryPolicy, now: float) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if policy.vlmrun_secret:
        headers[VLMRUN_SIGNATURE_HEADER] = sign_vlmrun(policy.vlmrun_secret, message.body)
    if policy.standard_secret:
        headers.update(
            standard_webhook_headers(
                policy.standard_secret, message.webhook_id, int(now), message.body
            )
        )
    return headers


async def deliver(
    client: httpx.AsyncClient,
    message: CallbackMessage,
    policy: DeliveryPolicy,
    *,
    record: Callable[[DeliveryAttempt], None],
    limiter: asyncio.Semaphore,
    copy: int = 1,
) -> bool:
    """POST `message` until a 2xx or `policy.max_attempts` attempts; True when delivered.

    `limiter` bounds the POSTs in flight across all deliveries (not the backoff sleeps).
    """
    for attempt in range(1, policy.max_attempts + 1):
        # Waiting for a free slot is not part of the attempt, so it is neither timed nor
        # stamped: the timestamp is fresh, as Standard Webhooks receivers check it.
        async with limiter:
            headers = signed_headers(message, policy, time.time())
            started_at = utc_now()
            status_code, error = await _post_once(client, message, headers, policy)
            finished_at = utc_now()
        record(
            DeliveryAttempt(
                prediction_id=message.prediction_id,
                prediction_status=message.status,
                url=message.url,
                webhook_id=message.webhook_id,
                copy=copy,
                attempt=attempt,
                started_at=started_at,
                finished_at=finished_at,
                headers=headers,
                status_code=status_code,
                error=error,
            )
        )
        if error is None:
            return True
        if attempt < policy.max_attempts:
            await asyncio.sleep(policy.backoff(attempt))
    return False


async def _post_once(
    client: httpx.AsyncClient,
    message: CallbackMessage,
    headers: dict[str, str],
    policy: DeliveryPolicy,
) -> tuple[int | None, str | None]:
    """The status code (None on a transport error) and the error, None for a 2xx."""
    try:
        # One deadline for the whole exchange (connect, send, response), as a sender with a
        # 30 s timeout means it; httpx's own timeouts apply to each operation separately.
        async with asyncio.timeout(policy.timeout):
            response = await client.post(
                message.url, content=message.body, headers=headers, timeout=None
            )
    except TimeoutError:
        return None, f"Timeout: no response within {policy.timeout:g} s"
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    except Exception as exc:
        # The HTTP stack can leak other errors when the peer dies mid-connect (e.g. an
        # AttributeError from getpeername on a closed socket); that is still a failed
        # attempt to retry, never a lost callback.
        return None, f"{type(exc).__name__}: {exc}"
    if not response.is_success:
        return response.status_code, f"HTTP {response.status_code}"
    return response.status_code, None

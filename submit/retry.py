"""When to retry an API call and how long to wait: exponential backoff with full jitter.

Connect errors, timeouts, 429 and 5xx are retried; every other 4xx is final. A server's
``Retry-After`` (read by ``vlmhooks.retry_timing.parse_retry_after``) replaces the backoff
for that attempt.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from submit.errors import ApiError, RateLimited, ServerError, TransportError
from vlmhooks.retry_timing import backoff_delay

__all__ = [
    "DEFAULT_BASE_DELAY",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_DELAY",
    "DEFAULT_MAX_RETRY_AFTER",
    "NO_RETRIES",
    "RetryPolicy",
    "acall_with_retries",
    "call_with_retries",
    "is_retryable",
]

DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_BASE_DELAY = 0.5
DEFAULT_MAX_DELAY = 30.0
# "Full jitter": many clients backing off from one server spread out the most.
JITTER = 1.0
# A server asking for a longer pause than this is treated as "not now": the caller gets
# the error (with its retry_after) instead of a process silently asleep for an hour.
DEFAULT_MAX_RETRY_AFTER = 300.0

T = TypeVar("T")
logger = logging.getLogger("vlmhooks.submit.retry")


def is_retryable(error: ApiError) -> bool:
    """Connect errors, timeouts, 429 and 5xx may succeed next time; other errors will not."""
    return isinstance(error, TransportError | RateLimited | ServerError)


def _retry_after(error: ApiError) -> float | None:
    if isinstance(error, RateLimited | ServerError):
        return error.retry_after
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, and the backoff between them; ``random`` is injectable for tests."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base_delay: float = DEFAULT_BASE_DELAY
    max_delay: float = DEFAULT_MAX_DELAY
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    random: Callable[[], float] = field(default=random.random, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must not be negative")

    def backoff(self, retry: int) -> float:
        """Uniform in [0, min(cap, base * 2**retry)), for retry number ``retry`` (0 first)."""
        return backoff_delay(
            retry, base=self.base_delay, cap=self.max_delay, jitter=JITTER, draw=self.random()
        )

    def delay_before_retry(self, attempt: int, error: ApiError) -> float | None:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), or None to give up."""
        if attempt >= self.max_attempts or not is_retryable(error):
            return None
        retry_after = _retry_after(error)
        if retry_after is None:
            return self.backoff(attempt - 1)
        if retry_after > self.max_retry_after:
            return None
        return retry_after


NO_RETRIES = RetryPolicy(max_attempts=1)


def call_with_retries(
    send: Callable[[], T], policy: RetryPolicy, sleep: Callable[[float], None]
) -> T:
    """Call ``send`` until it returns, or raise its last ``ApiError`` once the policy gives up."""
    attempt = 1
    while True:
        try:
            return send()
        except ApiError as error:
            delay = policy.delay_before_retry(attempt, error)
            if delay is None:
                raise
            _log_retry(attempt, policy, delay, error)
        sleep(delay)
        attempt += 1


async def acall_with_retries(
    send: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]],
) -> T:
    """The async twin of ``call_with_retries``."""
    attempt = 1
    while True:
        try:
            return await send()
        except ApiError as error:
            delay = policy.delay_before_retry(attempt, error)
            if delay is None:
                raise
            _log_retry(attempt, policy, delay, error)
        await sleep(delay)
        attempt += 1


def _log_retry(attempt: int, policy: RetryPolicy, delay: float, error: ApiError) -> None:
    logger.info(
        "attempt %d/%d failed (%s); retrying in %.2fs", attempt, policy.max_attempts, error, delay
    )

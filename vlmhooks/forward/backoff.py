"""Retry timing: exponential backoff with jitter, and a destination's `Retry-After`."""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff", "parse_retry_after"]

DEFAULT_INITIAL_SECONDS = 1.0
DEFAULT_MAX_SECONDS = 300.0
# A destination may ask for a pause, not for a week of silence.
MAX_RETRY_AFTER_SECONDS = 3600.0


@dataclass(frozen=True)
class Backoff:
    initial: float = DEFAULT_INITIAL_SECONDS
    maximum: float = DEFAULT_MAX_SECONDS

    def delay(
        self, failures: int, random: Callable[[], float], retry_after: float | None = None
    ) -> float:
        """Seconds before attempt `failures + 1`: "equal jitter" (half fixed, half random), so
        many rows failing together spread out but none retries at once; never sooner than
        the destination's `Retry-After`."""
        ceiling = min(self.maximum, self.initial * math.pow(2, max(0, failures - 1)))
        delay = ceiling / 2 + random() * ceiling / 2
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
        return delay


def parse_retry_after(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds from `now`: delta-seconds or an HTTP date; None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)

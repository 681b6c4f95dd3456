"""The forwarding relay's retry timing: its backoff policy over the shared formula
(vlmhooks/retry_timing.py), never sooner than a destination's `Retry-After`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vlmhooks.retry_timing import backoff_delay

__all__ = ["Backoff"]

DEFAULT_INITIAL_SECONDS = 1.0
DEFAULT_MAX_SECONDS = 300.0
# "Equal jitter": many rows failing together spread out, but none retries at once.
JITTER = 0.5
# A destination may ask for a pause, not for a week of silence.
MAX_RETRY_AFTER_SECONDS = 3600.0


@dataclass(frozen=True)
class Backoff:
    initial: float = DEFAULT_INITIAL_SECONDS
    maximum: float = DEFAULT_MAX_SECONDS

    def delay(
        self, failures: int, random: Callable[[], float], retry_after: float | None = None
    ) -> float:
        """Seconds before attempt `failures + 1`; never sooner than the destination's
        `Retry-After`, which is honoured up to `MAX_RETRY_AFTER_SECONDS`."""
        delay = backoff_delay(
            failures - 1, base=self.initial, cap=self.maximum, jitter=JITTER, draw=random()
        )
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
        return delay

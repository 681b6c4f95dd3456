"""One structured log line per refused callback, and a counter by reason for `/metrics`.

A receiver whose key or webhook secret does not match the sender's refuses every callback;
the operator must be able to see that without a database row (a request without a valid
token writes none). Those unauthenticated lines are rate-limited: anyone can send them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import orjson
from prometheus_client import Counter

from vlmhooks.errors import ProblemError

__all__ = ["REFUSALS_LOGGER", "RefusalLog"]

REFUSALS_LOGGER = "vlmhooks.refusals"
# Unauthenticated refusals: a burst of this many lines, then one per second at most.
UNAUTHENTICATED_BURST = 20
UNAUTHENTICATED_PER_SECOND = 1.0
# A detail names fields and headers, never values; the cap keeps a line a line.
MAX_DETAIL_CHARS = 300

log = logging.getLogger(REFUSALS_LOGGER)


class RefusalLog:
    def __init__(
        self,
        counter: Counter,
        *,
        clock: Callable[[], float] = time.monotonic,
        burst: int = UNAUTHENTICATED_BURST,
        per_second: float = UNAUTHENTICATED_PER_SECOND,
    ) -> None:
        self._counter = counter
        self._clock = clock
        self._burst = float(burst)
        self._per_second = per_second
        self._allowance = float(burst)
        self._refilled_at = clock()
        self.suppressed = 0

    def record(
        self,
        error: ProblemError,
        *,
        submission_id: str | None,
        prediction_id: str | None,
        authenticated: bool = True,
    ) -> None:
        """Count the refusal; log it (unauthenticated ones within the rate limit)."""
        self._counter.labels(error.type_slug).inc()
        if not authenticated and not self._take():
            self.suppressed += 1
            return
        fields: dict[str, object] = {
            "reason": error.type_slug,
            "status": error.status,
            "submission_id": submission_id,
            "prediction_id": prediction_id,
            "detail": error.detail[:MAX_DETAIL_CHARS],
        }
        if not authenticated and self.suppressed:
            fields["suppressed_since_last"] = self.suppressed
            self.suppressed = 0
        # JSON: ids are the sender's strings, and must not be able to forge a log line.
        log.warning("callback refused %s", orjson.dumps(fields).decode(), extra={"refusal": fields})

    def _take(self) -> bool:
        now = self._clock()
        elapsed = max(0.0, now - self._refilled_at)
        self._refilled_at = now
        self._allowance = min(self._burst, self._allowance + elapsed * self._per_second)
        if self._allowance < 1.0:
            return False
        self._allowance -= 1.0
        return True

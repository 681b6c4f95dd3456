"""When to try again: the one `Retry-After` parser and the one backoff formula.

Pure functions, time and randomness as parameters. The forwarding relay
(vlmhooks/forward/backoff.py), the API client (submit/retry.py) and the sandbox's callback
sender (sandbox/delivery.py) each keep their own policy (base, cap, jitter) and share these.
"""

from __future__ import annotations

import math
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = ["backoff_delay", "parse_retry_after"]

# Past this many doublings any sane base has long met its cap; stopping here keeps
# `base * 2**retry` finite (2.0**1024 raises OverflowError) however long the failures run.
_MAX_DOUBLINGS = 64


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header, counted from `now` (epoch seconds); None
    when there is no usable value.

    Lenient, as servers are: delta-seconds with or without decimals ("120", "1.5"), and an
    HTTP date with or without a zone (RFC 9110 dates are GMT, so a zone-less one is read as
    GMT). A negative delay or a date already past is 0: the server means "now". NaN and
    infinity are no delay at all. A long delay is returned as it is: whether to wait for
    it or give up is the caller's policy, and the callers differ.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def backoff_delay(
    retry: int, *, base: float, cap: float, jitter: float = 0.0, draw: float = 0.0
) -> float:
    """Seconds to wait before retry number `retry` (0 for the first): `base * 2**retry`, at
    most `cap`, of which the fraction `jitter` is scaled by `draw` (a random number in
    [0, 1), a parameter so tests are exact).

    `jitter=0` waits the full step; `0.5` is "equal jitter" (half fixed, half random: spread
    out, never at once); `1` is "full jitter" (uniform in [0, step), the AWS architecture
    blog's choice for many clients competing for one server).
    """
    step = min(cap, base * 2.0 ** min(max(retry, 0), _MAX_DOUBLINGS))
    if not jitter:
        return step
    fixed = step * (1.0 - jitter)
    return fixed + (step - fixed) * draw

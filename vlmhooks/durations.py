"""Durations in settings and CLI options: `90s`, `15m`, `12h`, `30d`."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["DurationTooLong", "parse_duration"]

_DURATION = re.compile(r"^\s*(\d{1,9})\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A century: every duration is subtracted from "now", which a larger one would overflow
# (`OverflowError: date value out of range`, a traceback instead of one line).
MAX_DAYS = 36500


class DurationTooLong(ValueError):
    """A well-formed duration over `MAX_DAYS`."""


def parse_duration(text: str) -> timedelta:
    """`text` as a positive timedelta; `ValueError` naming the accepted format otherwise."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise ValueError(f"expected a duration such as 90s, 15m, 12h or 30d, got {text!r}")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"the duration must be positive, got {text!r}")
    if seconds > MAX_DAYS * 86400:
        raise DurationTooLong(f"the duration must be at most {MAX_DAYS}d, got {text!r}")
    return timedelta(seconds=seconds)

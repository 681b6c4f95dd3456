"""Fault injection: the `X-Sandbox-Faults` syntax and the `FaultPlan` it parses into.

The same text configures a whole sandbox (`VLMHOOKS_SANDBOX_FAULTS`) or one request (header).

Syntax: comma-separated items, each `name` or `name=value`; spaces around items are ignored,
`-` and `_` are interchangeable in names, a name may appear once; `none` alone means no faults.

    duplicate[=N]      send every callback N times in all (bare: 2); retries come on top
    out_of_order       send a `running` callback AFTER the terminal one
    drop               send no callback at all; the prediction still completes (GET shows it)
    delay=SECONDS      wait this long before sending each callback
    fail               the prediction ends `failed` with {"error": "..."} as its response
    generate_503[=N]   the first N generate attempts answer 503 (bare: 1)
    generate_429[=N]   the next N generate attempts answer 429 (bare: 1)
    retry_after=SECS   the Retry-After of those 503/429 answers (integer, default 1)

Generate faults are checked after validation (an invalid request still gets its 422). Set per
sandbox they count every valid generate call; set per request, the attempts of that request
`id` (or, with no `id`, of that header text). The 503 answers come first, then the 429 ones.
Example: `X-Sandbox-Faults: duplicate=2, out_of_order, delay=0.5, generate_503=2`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from sandbox.errors import FaultSyntaxError

__all__ = ["FAULTS_HEADER", "FaultPlan", "FaultSyntaxError", "parse_faults"]

FAULTS_HEADER = "X-Sandbox-Faults"

# Caps keep one request from tying the sandbox up for hours or flooding a receiver.
MAX_FAULTS_TEXT = 1024
MAX_DUPLICATES = 100
MAX_DELAY_SECONDS = 300.0
MAX_GENERATE_FAULTS = 100
MAX_RETRY_AFTER_SECONDS = 3600
DEFAULT_RETRY_AFTER_SECONDS = 1

_FLAGS = frozenset({"out_of_order", "drop", "fail"})


@dataclass(frozen=True)
class FaultPlan:
    """What to break for a prediction (or, for `generate_*`, for its POST attempts)."""

    duplicate: int = 1
    out_of_order: bool = False
    drop: bool = False
    delay: float = 0.0
    fail: bool = False
    generate_503: int = 0
    generate_429: int = 0
    retry_after: int = DEFAULT_RETRY_AFTER_SECONDS

    def generate_fault(self, attempt: int) -> int | None:
        """The status the `attempt`-th generate call (1-based) answers with, if it is faulted."""
        if attempt <= self.generate_503:
            return 503
        if attempt <= self.generate_503 + self.generate_429:
            return 429
        return None

    def to_text(self) -> str:
        """The canonical spec of this plan; `parse_faults(plan.to_text()) == plan`."""
        default = FaultPlan()
        items: list[str] = []
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value == getattr(default, spec.name):
                continue
            items.append(spec.name if spec.name in _FLAGS else f"{spec.name}={value}")
        return ",".join(items) or "none"


def parse_faults(text: str | None) -> FaultPlan:
    """Parse a fault spec (see the module docstring); `FaultSyntaxError` says what is wrong."""
    if text is None or not text.strip() or text.strip().lower() == "none":
        return FaultPlan()
    if len(text) > MAX_FAULTS_TEXT:
        raise FaultSyntaxError(f"fault spec is longer than {MAX_FAULTS_TEXT} characters")
    values: dict[str, int | float | bool] = {}
    for raw_item in text.split(","):
        item = raw_item.strip()
        if not item:
            raise FaultSyntaxError(f"empty item in fault spec {text!r}")
        raw_name, equals, raw_value = item.partition("=")
        name = raw_name.strip().lower().replace("-", "_")
        value = raw_value.strip() if equals else None
        if name in values:
            raise FaultSyntaxError(f"fault {name!r} is given twice")
        values[name] = _parse_value(name, value)
    return FaultPlan(**values)  # type: ignore[arg-type]  # names and types checked above


def _parse_value(name: str, value: str | None) -> int | float | bool:
    if name in _FLAGS:
        if value is not None:
            raise FaultSyntaxError(f"fault {name!r} takes no value")
        return True
    if name == "duplicate":
        return _integer(name, value, default=2, low=1, high=MAX_DUPLICATES)
    if name in ("generate_503", "generate_429"):
        return _integer(name, value, default=1, low=0, high=MAX_GENERATE_FAULTS)
    if name == "retry_after":
        return _integer(name, value, default=None, low=0, high=MAX_RETRY_AFTER_SECONDS)
    if name == "delay":
        return _seconds(name, value)
    if name == "none":
        raise FaultSyntaxError("'none' cannot be combined with other faults")
    known = "duplicate, out_of_order, drop, delay, fail, generate_503, generate_429, retry_after"
    raise FaultSyntaxError(f"unknown fault {name!r}; known faults: {known}")


def _integer(name: str, value: str | None, *, default: int | None, low: int, high: int) -> int:
    if value is None:
        if default is None:
            raise FaultSyntaxError(f"fault {name!r} needs a value, e.g. {name}=1")
        return default
    if not (value.isascii() and value.isdigit()):
        raise FaultSyntaxError(f"fault {name!r} needs a whole number, got {value!r}")
    number = int(value)
    if not low <= number <= high:
        raise FaultSyntaxError(f"fault {name!r} must be between {low} and {high}, got {number}")
    return number


def _seconds(name: str, value: str | None) -> float:
    if value is None:
        raise FaultSyntaxError(f"fault {name!r} needs a number of seconds, e.g. {name}=0.5")
    try:
        seconds = float(value)
    except ValueError:
        raise FaultSyntaxError(f"fault {name!r} needs a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_DELAY_SECONDS:
        raise FaultSyntaxError(
            f"fault {name!r} must be between 0 and {MAX_DELAY_SECONDS:g} seconds, got {value!r}"
        )
    return seconds

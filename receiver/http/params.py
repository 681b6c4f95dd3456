"""Query-parameter parsing for the lookup API: every bad value is a 400 naming the parameter.

An empty value is a bad value, not an absent one: `?created_after=` is a mistake to report.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

from pydantic import Field
from starlette.datastructures import QueryParams

from schemas.contract import as_utc
from schemas.enums import Status
from vlmhooks.errors import PayloadError
from vlmhooks.reads.pagination import DEFAULT_LIMIT, MAX_LIMIT

# The documented types of the parameters parsed below (`receiver/http/routing.py`).
# PostgreSQL text cannot hold NUL, so such a value is refused rather than looked up.
TextParam = Annotated[str, Field(pattern="^[^\\u0000]*$")]
LimitParam = Annotated[  # the page size
    int,
    Field(ge=1, le=MAX_LIMIT, json_schema_extra={"default": DEFAULT_LIMIT}),
]
SeqParam = Annotated[int, Field(ge=0)]


def bad_parameter(name: str, detail: str) -> PayloadError:
    return PayloadError(f"{name}: {detail}", parameter=name)


def text_param(query: QueryParams, name: str) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    # PostgreSQL text cannot hold NUL, so no stored value could ever match it.
    if "\x00" in value:
        raise bad_parameter(name, "must not contain NUL characters")
    return value


def wait_param(query: QueryParams, name: str, cap: float) -> float:
    """Seconds to long-poll: a finite number >= 0, silently capped at `cap`."""
    raw = query.get(name)
    if raw is None:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        raise bad_parameter(name, f"expected a number of seconds, got {raw!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise bad_parameter(name, f"expected a finite number >= 0, got {raw!r}")
    return min(seconds, cap)


def int_param(
    query: QueryParams, name: str, *, default: int, minimum: int, maximum: int | None = None
) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    return parse_int(name, raw, minimum=minimum, maximum=maximum)


def parse_int(name: str, raw: str, *, minimum: int, maximum: int | None = None) -> int:
    # isdigit() alone accepts "²" and other Unicode digits that int() then refuses.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise bad_parameter(name, f"expected an integer, got {raw!r}")
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise bad_parameter(name, f"expected an integer >= {minimum}{upper}, got {value}")
    return value


def bool_param(query: QueryParams, name: str) -> bool:
    raw = query.get(name)
    if raw is None:
        return False
    lowered = raw.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise bad_parameter(name, f"expected true or false, got {raw!r}")


def timestamp_param(query: QueryParams, name: str) -> datetime | None:
    """ISO 8601; a timestamp without an offset is UTC, like every time we store."""
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return as_utc(datetime.fromisoformat(raw))
    except (ValueError, OverflowError):
        raise bad_parameter(name, f"expected an ISO 8601 timestamp, got {raw!r}") from None


def status_param(query: QueryParams, name: str) -> Status | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return Status(raw)
    except ValueError:
        allowed = ", ".join(status.value for status in Status)
        raise bad_parameter(name, f"expected one of {allowed}, got {raw!r}") from None


def reject_unknown(query: QueryParams, known: frozenset[str]) -> None:
    """A 400 naming the first parameter this route does not take.

    A silently ignored parameter (`?skip=5` before the list took one, a misspelt
    `?stauts=`) answers a different question than the one asked.
    """
    for name in query:
        if name not in known:
            expected = ", ".join(sorted(known)) or "none"
            raise bad_parameter(name, f"unknown query parameter (this route takes: {expected})")

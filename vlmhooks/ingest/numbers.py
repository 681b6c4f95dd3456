"""Numbers kept exactly as signed: a JSON number the parser would round is refused (422).

orjson turns an integer beyond 64 bits into a float and a long decimal into the nearest
double, silently. Storing that would serve data the sender never signed, so the body's own
text is the judge: every number must survive as the value it spells.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

__all__ = ["first_inexact_number"]

# A number the parser holds exactly has at most 15 significant digits and no exponent
# (DBL_DIG), or is an integer orjson keeps as an int. Anything else shows, in the raw
# bytes, a run of 16 digits-or-dots or a digit followed by an exponent mark; a match
# (strings can match too) only buys the exact check. Found with one `translate` and two
# substring searches, a fraction of a regex's cost (bench/README.md, "Issue 13: the ingest
# path redesigned", the exact-number gate).
_DIGIT = ord("1")
_CLASSES = bytes(
    _DIGIT if chr(i) in "0123456789." else ord("e") if chr(i) in "eE" else ord(" ")
    for i in range(256)
)
_LONG_RUN = b"1" * 16
_EXPONENT = b"1e"
# A digit before an `e` is common inside strings: the API's prediction ids are random UUIDs
# (`57e631dc-…`). Each such place is looked at before paying for the exact check: in JSON
# (orjson has parsed the body already) a number starts after one of these, or after its
# minus sign, and ends before one of those (bench/README.md, "The exact-number gate and
# UUID ids").
_BEFORE_NUMBER = frozenset(b"[,: \t\n\r-")
_AFTER_NUMBER = frozenset(b",]} \t\n\r")
_SIGNS = frozenset(b"+-")
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson parses as an int
# Python refuses to convert longer digit strings; such an integer is not holdable anyway.
_MAX_INT_DIGITS = 4000


class _Unholdable:
    """Stands for an integer literal too long to convert."""


def first_inexact_number(body: bytes) -> str | None:
    """The path (`response.items[2].total`) of the first number in the JSON `body` that the
    parser cannot hold exactly, `<root>` when the body cannot be checked, else None.

    Exact means the double's shortest repr names the same decimal as the text ("1.10" and
    "1.1" are the same number), or an integer within orjson's 64-bit range.
    """
    classes = body.translate(_CLASSES)
    if _LONG_RUN not in classes and not _has_exponent_number(body, classes):
        return None
    try:
        exact = json.loads(body, parse_float=Decimal, parse_int=_parse_int, parse_constant=_nan)
    except RecursionError:
        return "<root>"
    except ValueError:
        return None  # not JSON for the stdlib either: the caller's parse error stands
    return _first_unholdable(exact)


def _has_exponent_number(body: bytes, classes: bytes) -> bool:
    """Whether `body` may hold a number with an exponent: a digit and `e` that could be one
    (false positives only cost the exact check; a real one is never missed)."""
    end = len(body)
    at = classes.find(_EXPONENT)
    while at >= 0:
        # The mantissa: the run of digits and dots that ends at the digit before the `e`.
        start = at
        while start > 0 and classes[start - 1] == _DIGIT:
            start -= 1
        after = at + 2  # past the `e`
        if after < end and body[after] in _SIGNS:
            after += 1
        digits = after
        while after < end and 48 <= body[after] <= 57:
            after += 1
        if (
            (start == 0 or body[start - 1] in _BEFORE_NUMBER)
            and after > digits
            and (after == end or body[after] in _AFTER_NUMBER)
        ):
            return True
        at = classes.find(_EXPONENT, at + 1)
    return False


def _parse_int(text: str) -> int | _Unholdable:
    return int(text) if len(text) <= _MAX_INT_DIGITS else _Unholdable()


def _nan(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def _first_unholdable(value: Any) -> str | None:
    # Iterative: the parser accepts nesting deeper than Python's recursion limit.
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            for key, child in reversed(node.items()):
                stack.append((f"{path}.{key}" if path else str(key), child))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", child) for i, child in reversed(list(enumerate(node))))
        elif not _holdable(node):
            return path or "<root>"
    return None


def _holdable(node: Any) -> bool:
    if isinstance(node, Decimal):
        as_float = float(node)
        return as_float not in (float("inf"), float("-inf")) and Decimal(repr(as_float)) == node
    if isinstance(node, _Unholdable):
        return False
    if isinstance(node, int) and not isinstance(node, bool):
        return _INT_MIN <= node <= _INT_MAX
    return True

"""Hypothesis strategies for the callback fuzzers (`test_fuzz_callbacks.py`): JSON values
of every shape and depth, timestamps at the edges of what datetime holds, content types,
header names and values h11 will carry, and mutations of a valid prediction."""

from __future__ import annotations

import json
import string
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from schemas.enums import Status

JSON_SCALARS = (
    st.none()
    | st.booleans()
    # Beyond 64 bits on purpose: the parser refuses those (a 400), it must not crash.
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
# The parser stops at 1,024 levels (a 400); the receiver must cope with everything below.
MAX_PARSED_DEPTH = 1024


def nested(depth: int) -> Any:
    value: Any = []
    for level in range(depth - 1):
        value = [value] if level % 2 else {"k": value}
    return value


DEEP_VALUES = st.integers(min_value=1, max_value=MAX_PARSED_DEPTH + 50).map(nested)
UTC_OFFSETS = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
EDGE_TIMESTAMPS = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:30:00+01:00",
    "0001-01-01T23:59:59-23:59",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T00:00:00+14:00",
]


DATETIMES = st.datetimes(timezones=st.none() | UTC_OFFSETS).map(
    datetime.isoformat
) | st.sampled_from(EDGE_TIMESTAMPS)
TIMESTAMPS = (
    DATETIMES
    | st.sampled_from(
        ["", "2026-11-24", "2026-13-01T00:00:00Z", "2026-11-24T25:00:00Z", "24/11/2026", "now"]
    )
    | st.text(max_size=30)
    | JSON_VALUES
)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "id": st.text(max_size=200) | st.sampled_from(["", " ", "\t", "pred"]) | JSON_VALUES,
    "status": st.sampled_from([s.value for s in Status])
    | st.sampled_from(["COMPLETED", "Completed", "done", "cancelled", " running", ""])
    | JSON_VALUES,
    "created_at": TIMESTAMPS,
    "completed_at": TIMESTAMPS,
    "response": JSON_VALUES | DEEP_VALUES,
    "usage": JSON_VALUES
    | st.fixed_dictionaries(
        {},
        optional={
            "elements_processed": st.integers(min_value=-(2**63), max_value=2**63) | JSON_VALUES,
            "element_type": st.text(max_size=20) | JSON_VALUES,
            "credits_used": st.integers(min_value=-(2**63), max_value=2**63) | JSON_VALUES,
        },
    ),
    "domain": st.text(max_size=80) | JSON_VALUES,
}
Mutation = tuple[str, str, Any]
MUTATIONS: st.SearchStrategy[Mutation] = st.one_of(
    st.sampled_from(sorted(FIELD_VALUES)).flatmap(
        lambda name: st.tuples(st.just("set"), st.just(name), FIELD_VALUES[name])
    ),
    st.tuples(st.just("drop"), st.sampled_from(sorted(FIELD_VALUES)), st.none()),
    st.tuples(st.just("extra"), st.text(max_size=20), JSON_VALUES),
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "APPLICATION/JSON",
        "application/vnd.vlmrun+json",
        "application/json; charset=latin-1",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
        "application/",
        "/json",
        ";",
    ]
)
# What h11 will put in a header value: visible ASCII and obs-text, no CR/LF/NUL, no edges.
HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=120,
).map(str.strip)
HEADER_NAMES = st.text(
    alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=24
)
# Names that frame the request or route it: random values there test h11, not the receiver.
FRAMING_HEADERS = {"content-length", "transfer-encoding", "host", "connection", "expect", "te"}


def encode_json(value: Any, ascii_only: bool) -> bytes:
    # The stdlib encoder recurses per level; DEEP_VALUES go past the default limit.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * MAX_PARSED_DEPTH))
    try:
        text = json.dumps(value, ensure_ascii=ascii_only)
    finally:
        sys.setrecursionlimit(limit)
    # surrogatepass: a lone surrogate becomes invalid UTF-8 on the wire, as a buggy sender's.
    return text.encode("utf-8", "surrogatepass")


def mutate(body: dict[str, Any], mutations: list[Mutation]) -> dict[str, Any]:
    mutated = dict(body)
    for action, name, value in mutations:
        if action == "drop":
            mutated.pop(name, None)
        elif name == "usage" and isinstance(value, dict) and isinstance(mutated.get("usage"), dict):
            mutated["usage"] = {**mutated["usage"], **value}
        else:
            mutated[name] = value
    return mutated


def text_mutations(valid: str) -> st.SearchStrategy[str]:
    """`valid`, slightly broken: one character changed, cut short, extended or re-cased."""
    if not valid:
        return st.just("x")
    return st.one_of(
        st.tuples(st.integers(0, len(valid) - 1), st.sampled_from("0aZ-_=+/.")).map(
            lambda t: valid[: t[0]] + t[1] + valid[t[0] + 1 :]
        ),
        st.integers(0, len(valid) - 1).map(lambda n: valid[:n]),
        st.sampled_from("0aZ=,.").map(lambda c: valid + c),
        st.just(valid.swapcase()),
    )


@dataclass(frozen=True)
class HeaderPlan:
    """One header's fate: `valid`, `missing`, `garbage`, `mutated`, `doubled` or `stale`."""

    kind: str
    values: tuple[str, ...]


@st.composite
def header_plan(draw: st.DrawFn, valid: str, *, stale: str | None = None) -> HeaderPlan:
    kinds = ["valid", "valid", "missing", "garbage", "mutated", "doubled"]
    if stale is not None:
        kinds.append("stale")
    kind = draw(st.sampled_from(kinds))
    if kind == "valid":
        return HeaderPlan(kind, (valid,))
    if kind == "missing":
        return HeaderPlan(kind, ())
    if kind == "garbage":
        return HeaderPlan(kind, (draw(HEADER_TEXT),))
    if kind == "mutated":
        return HeaderPlan(kind, (draw(text_mutations(valid)),))
    if kind == "stale":
        assert stale is not None
        return HeaderPlan(kind, (stale,))
    return HeaderPlan(kind, (valid, draw(HEADER_TEXT)))


def as_header_list(plans: dict[str, HeaderPlan]) -> list[tuple[bytes, bytes]]:
    return [
        (name.encode("ascii"), value.encode("latin-1"))
        for name, plan in plans.items()
        for value in plan.values
    ]

"""The exact-number gate (vlmhooks/ingest/numbers.py): the cheap look at the raw bytes
never hides a number the parser would round, and a digit before an `e` inside a string (a
UUID prediction id) no longer buys the full exact check."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlmhooks.ingest import numbers
from vlmhooks.ingest.numbers import first_inexact_number


def _exact_check(body: bytes) -> str | None:
    """The check without the gate: every body goes through the stdlib's exact parse."""
    parsed = json.loads(body, parse_float=Decimal, parse_int=numbers._parse_int)
    return numbers._first_unholdable(parsed)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b'{"a":1e400}', "a"),
        (b'{"a": -1E+400 }', "a"),
        (b'{"r":{"x":[1, 2.5e-400]}}', "r.x[1]"),
        (b"[1e5,\n1e400]", "[1]"),
        (b"1e400", "<root>"),
        (b'{"n":123456789012345678901234}', "n"),
        (b'{"a":1e5, "b":2.5E-3, "c":-7e+2}', None),
        (b'{"id":"57e631dc-ef36-4d59-8e12-000000000000","t":1.5}', None),
    ],
)
def test_known_answers(body: bytes, path: str | None) -> None:
    assert first_inexact_number(body) == path
    assert _exact_check(body) == path


def test_uuid_ids_do_not_buy_the_exact_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bodies whose only digit-then-`e` sits in hex ids are passed without the slow parse."""

    def never(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the exact check ran")

    monkeypatch.setattr(numbers.json, "loads", never)
    for n in range(200):
        ids = [str(uuid.UUID(int=(n * 7919 + k) * 0x9E3779B97F4A7C15 % 2**128)) for k in range(3)]
        body = orjson.dumps({"id": ids[0], "response": {"ref": ids[1], "n": 12, "x": 0.5}})
        assert first_inexact_number(body) is None


# Numbers as a sender may write them: with exponents, and with more digits or a larger
# exponent than a double holds (so that many are inexact), or short and exact.
_NUMBER_TEXT = st.one_of(
    st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,20})?[eE][-+]?[0-9]{1,3}", fullmatch=True),
    st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,20})?", fullmatch=True),
    st.integers(-1000, 1000).map(str),
)
_STRING = st.one_of(
    st.text(alphabet="0123456789abcdefeE-+.", max_size=20),
    st.uuids().map(str),
)


@st.composite
def _documents(draw: st.DrawFn, depth: int = 0) -> str:
    """JSON text holding numbers as written (exponents included) and hex-like strings."""
    kind = draw(st.integers(0, 3 if depth < 3 else 1))
    if kind == 0:
        return str(draw(_NUMBER_TEXT))
    if kind == 1:
        return json.dumps(draw(_STRING))
    space = draw(st.sampled_from(["", " ", "\n"]))
    children = draw(st.lists(_documents(depth + 1), max_size=4))
    if kind == 2:
        return "[" + f",{space}".join(children) + "]"
    keys = draw(st.lists(_STRING, min_size=len(children), max_size=len(children)))
    pairs = [f"{json.dumps(key)}:{space}{child}" for key, child in zip(keys, children, strict=True)]
    return "{" + f",{space}".join(pairs) + "}"


@settings(max_examples=200)
@given(_documents())
def test_the_gate_agrees_with_the_exact_check_on_every_document(text: str) -> None:
    body = text.encode()
    assert first_inexact_number(body) == _exact_check(body)

from __future__ import annotations

import hashlib
import json
import re

import pytest
from itsdangerous import URLSafeTimedSerializer

from vlmhooks.errors import ConfigError, TokenExpired, TokenInvalid
from vlmhooks.trust.tokens import CallbackTokens, mint_callback_url, new_submission_id

T0 = 1_700_000_000.0
SUB = "sub_01hgw2bbg0k3n4m5p6q7r8s9tv"
SALT = "vlmhooks.callback-token"


class FrozenClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def foreign_serializer(keys: list[str], salt: str = SALT) -> URLSafeTimedSerializer:
    # Built from the documented wire format, not from the module's internals.
    return URLSafeTimedSerializer(keys, salt=salt, signer_kwargs={"digest_method": hashlib.sha256})


def test_known_answer_token() -> None:
    tokens = CallbackTokens(["old-key", "new-key"], clock=FrozenClock(T0))
    assert tokens.mint(SUB) == (
        "eyJzIjoic3ViXzAxaGd3MmJiZzBrM240bTVwNnE3cjhzOXR2In0"
        ".ZVPxAA.PUYspCE2HMpJNl4hnRAM8i1h_iHr65X4LOMVXhMwEjY"
    )


def test_round_trip_and_url_safe() -> None:
    tokens = CallbackTokens(["k1"], clock=FrozenClock(T0))
    token = tokens.mint(SUB)
    assert re.fullmatch(r"[A-Za-z0-9_.\-]+", token)
    assert tokens.verify(token) == SUB


def test_token_carries_only_the_submission_id() -> None:
    key = "super-secret-signing-key"
    token = CallbackTokens([key], clock=FrozenClock(T0)).mint(SUB)
    assert key not in token
    payload = foreign_serializer([key]).loads(token)
    assert payload == {"s": SUB}
    _, unverified = foreign_serializer(["not-the-key"]).loads_unsafe(token)
    assert unverified == {"s": SUB}


def test_old_key_still_verifies_after_rotation() -> None:
    clock = FrozenClock(T0)
    old_token = CallbackTokens(["k1"], clock=clock).mint(SUB)
    assert CallbackTokens(["k1", "k2"], clock=clock).verify(old_token) == SUB


def test_newest_key_signs() -> None:
    clock = FrozenClock(T0)
    token = CallbackTokens(["k1", "k2"], clock=clock).mint(SUB)
    assert CallbackTokens(["k2"], clock=clock).verify(token) == SUB
    with pytest.raises(TokenInvalid):
        CallbackTokens(["k1"], clock=clock).verify(token)


def test_unknown_key_is_invalid_not_expired() -> None:
    clock = FrozenClock(T0)
    token = CallbackTokens(["k1"], clock=clock).mint(SUB)
    with pytest.raises(TokenInvalid) as excinfo:
        CallbackTokens(["k2", "k3"], clock=clock).verify(token)
    assert excinfo.type is TokenInvalid


def test_other_salt_is_invalid() -> None:
    token = foreign_serializer(["k1"], salt="some.other-purpose").dumps({"s": SUB})
    with pytest.raises(TokenInvalid):
        CallbackTokens(["k1"]).verify(token)


def test_same_format_is_accepted() -> None:
    token = foreign_serializer(["k1"]).dumps({"s": SUB})
    assert CallbackTokens(["k1"]).verify(token) == SUB


@pytest.mark.parametrize(("segment", "index"), [(0, 2), (0, -1), (1, 0), (2, 0), (2, 20)])
def test_tampered_token_is_invalid(segment: int, index: int) -> None:
    tokens = CallbackTokens(["k1"], clock=FrozenClock(T0))
    parts = tokens.mint(SUB).split(".")
    chars = list(parts[segment])
    chars[index] = "A" if chars[index] != "A" else "B"
    parts[segment] = "".join(chars)
    with pytest.raises(TokenInvalid) as excinfo:
        tokens.verify(".".join(parts))
    assert excinfo.type is TokenInvalid


def test_payload_swapped_between_tokens_is_invalid() -> None:
    tokens = CallbackTokens(["k1"], clock=FrozenClock(T0))
    mine = tokens.mint(SUB)
    theirs = tokens.mint("sub_zzzzzzzzzzzzzzzzzzzzzzzzzz")
    spliced = theirs.split(".")[0] + "." + ".".join(mine.split(".")[1:])
    with pytest.raises(TokenInvalid):
        tokens.verify(spliced)


@pytest.mark.parametrize(
    "garbage",
    ["", ".", "..", "abc", "a.b", "a.b.c", "a.b.c.d", "\u00e9t\u00e9.x.y", "\udcff", "x" * 10_000],
)
def test_garbage_is_invalid(garbage: str) -> None:
    with pytest.raises(TokenInvalid) as excinfo:
        CallbackTokens(["k1"], clock=FrozenClock(T0)).verify(garbage)
    assert excinfo.type is TokenInvalid


@pytest.mark.parametrize(
    "payload",
    [{"s": 1}, {"s": ""}, {"s": None}, {"s": SUB, "x": 1}, {"sub": SUB}, {}, [SUB], SUB, None],
)
def test_wrong_payload_shape_is_invalid(payload: object) -> None:
    token = foreign_serializer(["k1"]).dumps(payload)
    with pytest.raises(TokenInvalid):
        CallbackTokens(["k1"]).verify(token)


def test_expiry_boundary_with_frozen_clock() -> None:
    clock = FrozenClock(T0 + 0.9)
    tokens = CallbackTokens(["k1"], max_age_seconds=60, clock=clock)
    token = tokens.mint(SUB)

    clock.now = T0 + 60.9  # age 60 s: just under the limit once truncated to whole seconds
    assert tokens.verify(token) == SUB

    clock.now = T0 + 61.0
    with pytest.raises(TokenExpired) as excinfo:
        tokens.verify(token)
    assert "expired" in excinfo.value.detail
    assert isinstance(excinfo.value, TokenInvalid)


def test_expired_under_an_old_key_is_still_expired() -> None:
    clock = FrozenClock(T0)
    token = CallbackTokens(["k1"], clock=clock).mint(SUB)
    clock.now = T0 + 3600
    with pytest.raises(TokenExpired):
        CallbackTokens(["k1", "k2"], max_age_seconds=60, clock=clock).verify(token)


def test_default_max_age_is_seven_days() -> None:
    clock = FrozenClock(T0)
    tokens = CallbackTokens(["k1"], clock=clock)
    token = tokens.mint(SUB)
    clock.now = T0 + 7 * 24 * 3600
    assert tokens.verify(token) == SUB
    clock.now += 1
    with pytest.raises(TokenExpired):
        tokens.verify(token)


def test_token_dated_in_the_future_is_invalid_not_expired() -> None:
    clock = FrozenClock(T0 + 100)
    tokens = CallbackTokens(["k1"], clock=clock)
    token = tokens.mint(SUB)
    clock.now = T0
    with pytest.raises(TokenInvalid) as excinfo:
        tokens.verify(token)
    assert excinfo.type is TokenInvalid
    assert "future" in excinfo.value.detail


@pytest.mark.parametrize("keys", [[], (), "one-string-key", ["k1", ""]])
def test_bad_key_list_is_a_config_error(keys: list[str]) -> None:
    with pytest.raises(ConfigError):
        CallbackTokens(keys)


@pytest.mark.parametrize("max_age", [0, -1])
def test_non_positive_max_age_is_a_config_error(max_age: int) -> None:
    with pytest.raises(ConfigError):
        CallbackTokens(["k1"], max_age_seconds=max_age)


def test_repr_hides_keys() -> None:
    text = repr(CallbackTokens(["hunter2-old", "hunter2-new"]))
    assert "hunter2" not in text
    assert "2 hidden" in text


def test_mint_rejects_empty_submission_id() -> None:
    with pytest.raises(ValueError):
        CallbackTokens(["k1"]).mint("")


@pytest.mark.parametrize("public_url", ["https://hooks.example.com", "https://hooks.example.com/"])
def test_mint_callback_url(public_url: str) -> None:
    tokens = CallbackTokens(["k1"], clock=FrozenClock(T0))
    url = mint_callback_url(public_url, tokens, SUB)
    prefix = "https://hooks.example.com/v1/callbacks/"
    assert url.startswith(prefix)
    assert tokens.verify(url.removeprefix(prefix)) == SUB


def test_new_submission_id_format() -> None:
    sid = new_submission_id()
    assert re.fullmatch(r"sub_[0-7][0-9a-hjkmnp-tv-z]{25}", sid)


def test_new_submission_id_encodes_milliseconds_first() -> None:
    # 1_700_000_000_123 ms in 10 Crockford base32 characters, computed independently.
    assert new_submission_id(now=1_700_000_000.123).startswith("sub_01hf7yat3v")
    assert new_submission_id(now=0).startswith("sub_0000000000")


def test_new_submission_ids_sort_by_time_and_are_unique() -> None:
    ids = [new_submission_id(now=T0 + i / 1000) for i in range(1000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 1000
    same_ms = {new_submission_id(now=T0) for _ in range(1000)}
    assert len(same_ms) == 1000


@pytest.mark.parametrize("now", [-1.0, 2.0**48 / 1000])
def test_new_submission_id_rejects_out_of_range_time(now: float) -> None:
    with pytest.raises(ValueError):
        new_submission_id(now=now)


def test_payload_json_is_compact() -> None:
    # URL length matters: the payload is {"s": id} with no whitespace.
    token = CallbackTokens(["k1"], clock=FrozenClock(T0)).mint(SUB)
    _, payload = foreign_serializer(["k1"]).loads_unsafe(token)
    assert json.dumps(payload, separators=(",", ":")) == '{"s":"' + SUB + '"}'
    assert len(token) < 120

"""The pure pieces of callback verification: media types, signature policy, the capped body
reader and the audit record; no server, no database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.requests import ClientDisconnect

from receiver.errors import BodyTooLarge
from receiver.ingest.body import declared_length, read_body
from receiver.ingest.verify import (
    SignaturePolicy,
    require_json_content_type,
    verify_provider_signatures,
)
from vlmhooks.errors import ConfigError, PayloadError, SignatureInvalid, UnsupportedMediaType
from vlmhooks.ingest.storable import find_nul
from vlmhooks.store.audit import (
    MAX_HEADER_VALUE_CHARS,
    MAX_REASON_CHARS,
    delivery_record,
    delivery_row,
)
from vlmhooks.store.records import sha256_hex
from vlmhooks.trust.signatures import (
    DEFAULT_TOLERANCE_SECONDS,
    StandardWebhookVerifier,
    VlmrunVerifier,
    sign_vlmrun,
    standard_webhook_headers,
)

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(
    "value",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=UTF8",
        "application/problem+json",
        "application/json; version=2",
    ],
)
def test_json_content_types(value: str) -> None:
    require_json_content_type(value)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "text/json",
        "application/xml",
        "application/json-seq",
        "application/+jsonx",
        "application/json; charset=utf-16",
        "multipart/form-data; boundary=x",
    ],
)
def test_other_content_types(value: str | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        require_json_content_type(value)


def test_policy_with_no_secrets_checks_nothing() -> None:
    assert verify_provider_signatures(b"{}", {}, SignaturePolicy(), now=0) is None


def test_policy_returns_the_webhook_id_as_replay_key() -> None:
    body = b'{"id": "p"}'
    headers = standard_webhook_headers(WHSEC, "msg_42", 1000, body)
    policy = SignaturePolicy.from_secrets(standard_secrets=(WHSEC,), tolerance_seconds=5)
    assert verify_provider_signatures(body, headers, policy, now=1004) == "msg_42"
    with pytest.raises(SignatureInvalid):
        verify_provider_signatures(body, headers, policy, now=1006)


def test_policy_refuses_conflicting_vlmrun_headers() -> None:
    body = b"{}"

    class Repeated(dict[str, str]):
        def items(self):  # type: ignore[override]
            return [("x-vlmrun-signature", sign_vlmrun("s", body)), ("x-vlmrun-signature", "x")]

    policy = SignaturePolicy.from_secrets(vlmrun_secrets=("s",))
    verify_provider_signatures(body, {"x-vlmrun-signature": sign_vlmrun("s", body)}, policy, now=0)
    with pytest.raises(SignatureInvalid, match="conflicting"):
        verify_provider_signatures(body, Repeated(), policy, now=0)


def test_policy_parses_its_secrets_when_built() -> None:
    policy = SignaturePolicy.from_secrets(vlmrun_secrets=("s",), standard_secrets=(WHSEC,))
    assert isinstance(policy.vlmrun, VlmrunVerifier)
    assert isinstance(policy.standard, StandardWebhookVerifier)
    assert policy.standard.tolerance_seconds == DEFAULT_TOLERANCE_SECONDS
    with pytest.raises(ConfigError):
        SignaturePolicy.from_secrets(standard_secrets=("whsec_!!",))
    with pytest.raises(ConfigError):
        SignaturePolicy.from_secrets(vlmrun_secrets=("",))


def test_policy_repr_hides_secrets() -> None:
    assert "hunter2" not in repr(SignaturePolicy.from_secrets(vlmrun_secrets=("hunter2",)))


def _receive(*parts: bytes) -> Callable[[], Awaitable[dict[str, Any]]]:
    """An ASGI `receive` that hands out `parts` as body messages, then a disconnect."""
    messages = [
        {"type": "http.request", "body": part, "more_body": index < len(parts) - 1}
        for index, part in enumerate(parts or (b"",))
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return receive


def _read(*parts: bytes, limit: int) -> bytes:
    return asyncio.run(read_body(_receive(*parts), limit=limit))


def test_read_body_joins_chunks_up_to_the_limit() -> None:
    assert _read(b"ab", b"", b"cd", limit=4) == b"abcd"
    assert _read(limit=4) == b""


def test_read_body_stops_at_the_first_chunk_past_the_limit() -> None:
    consumed: list[int] = []

    async def endless() -> dict[str, Any]:
        consumed.append(1)
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

    with pytest.raises(BodyTooLarge) as caught:
        asyncio.run(read_body(endless, limit=2500))
    assert len(consumed) == 3  # stopped pulling as soon as the cap was crossed
    assert caught.value.head == b"x" * 2500 and caught.value.status == 413


def test_declared_length() -> None:
    assert declared_length(None, limit=10) is None
    assert declared_length("10", limit=10) == 10
    with pytest.raises(BodyTooLarge):
        declared_length("11", limit=10)
    for bad in ["-1", "1e3", "+5", "٣", "", "0x10"]:
        with pytest.raises(PayloadError):
            declared_length(bad, limit=10)


def test_read_body_refuses_a_client_that_leaves_mid_body() -> None:
    async def leaves() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    with pytest.raises(ClientDisconnect):
        asyncio.run(read_body(leaves, limit=10))


def test_a_small_declared_length_does_not_lift_the_cap() -> None:
    declared_length("3", limit=5)
    with pytest.raises(BodyTooLarge):
        _read(b"abc", b"defgh", limit=5)


def test_delivery_record_keeps_selected_headers_and_caps_the_body() -> None:
    headers = [
        ("content-type", "application/json"),
        ("authorization", "Bearer secret"),
        ("webhook-signature", "v1,a"),
        ("webhook-signature", "v1,b"),
        ("user-agent", "u" * 5000),
    ]
    record = delivery_record(b"0123456789", headers, body_cap=4)
    assert record.headers == {
        "content-type": "application/json",
        "webhook-signature": "v1,a, v1,b",
        "user-agent": "u" * MAX_HEADER_VALUE_CHARS,
    }
    assert (record.body, record.body_truncated) == (b"0123", True)
    assert record.body_sha256 == sha256_hex(b"0123456789")
    assert delivery_record(b"01", [], body_cap=4).body_truncated is False


def test_delivery_row_escapes_nul_and_caps_every_reason() -> None:
    record = delivery_record(b"{}", [], body_cap=4)

    def reason_of(reason: str | None) -> object:
        row = delivery_row(
            record,
            prediction_id="p",
            submission_id=None,
            source="callback",
            received_at=datetime(2026, 1, 1, tzinfo=UTC),
            verdict="stale",
            reason=reason,
            http_status=200,
        )
        return row["reason"]

    assert reason_of(None) is None
    assert reason_of("a\x00b") == "a\\u0000b"
    assert reason_of("x" * (MAX_REASON_CHARS + 10)) == "x" * MAX_REASON_CHARS


def test_find_nul_reports_the_path_without_recursing() -> None:
    assert find_nul({"a": [1, "x", {"b": "ok"}]}) is None
    assert find_nul({"a": [1, "x", {"b": "o\x00k"}]}) == "a[2].b"
    assert find_nul({"k\x00": 1}) == "k\\u0000"
    assert find_nul("\x00") == "<root>"
    deep: object = "\x00"
    for _ in range(5000):  # far past Python's recursion limit
        deep = [deep]
    assert find_nul({"r": deep}) == "r" + "[0]" * 5000

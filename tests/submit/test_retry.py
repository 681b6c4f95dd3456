"""The retry policy alone: which errors are retried, the jittered backoff, Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from submit.errors import (
    AuthenticationError,
    BadRequest,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    UnexpectedResponse,
)
from submit.retry import RetryPolicy, call_with_retries
from vlmhooks.retry_timing import parse_retry_after

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
NOW_SECONDS = NOW.timestamp()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-3", 0.0),  # "now": a negative pause is none
        ("-0.5", 0.0),
        ("86400", 86400.0),  # long, but whether to wait is the policy's call, not the parser's
        ("", None),
        (" ", None),
        (None, None),
    ],
)
def test_retry_after_delta_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW_SECONDS) == seconds


def test_retry_after_http_date_is_relative_to_now() -> None:
    header = format_datetime(NOW + timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(header, now=NOW_SECONDS) == 42.0
    past = format_datetime(NOW - timedelta(minutes=1), usegmt=True)
    assert parse_retry_after(past, now=NOW_SECONDS) == 0.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("Fri, 02 Jan 2026 03:04:47 GMT", 42.0),
        ("Fri, 02 Jan 2026 03:04:47", 42.0),  # no zone: RFC 9110 dates are GMT
        ("Fri, 02 Jan 2026 03:04:47 -0000", 42.0),
        ("Fri, 02 Jan 2026 04:04:47 +0100", 42.0),
        ("Fri, 02 Jan 2026 03:04:04 GMT", 0.0),  # a second ago: now
    ],
)
def test_retry_after_http_dates_with_and_without_a_zone(header: str, seconds: float) -> None:
    assert parse_retry_after(header, now=NOW_SECONDS) == seconds


@pytest.mark.parametrize(
    "header", ["soon", "nan", "inf", "-inf", "1e400", "Mon, 99 Foo 2026", "12 s", "0x10"]
)
def test_retry_after_garbage_is_ignored(header: str) -> None:
    assert parse_retry_after(header, now=NOW_SECONDS) is None


def test_full_jitter_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0, random=lambda: 0.5)
    assert [policy.backoff(n) for n in range(5)] == [0.5, 1.0, 2.0, 2.5, 2.5]
    top = RetryPolicy(base_delay=1.0, max_delay=5.0, random=lambda: 0.999)
    assert top.backoff(10) < 5.0
    assert [RetryPolicy(random=lambda: 0.25).backoff(n) for n in range(8)] == [
        0.125,
        0.25,
        0.5,
        1.0,
        2.0,
        4.0,
        7.5,  # the default cap, 30 s, a quarter drawn
        7.5,
    ]


@pytest.mark.parametrize(
    "error",
    [
        TransportError("refused"),
        RateLimited("slow down"),
        ServerError("boom", status_code=503),
    ],
)
def test_retryable_errors_get_a_delay(error: Exception) -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=1.0, random=lambda: 1.0)
    assert policy.delay_before_retry(1, error) == 1.0  # type: ignore[arg-type]
    assert policy.delay_before_retry(2, error) == 2.0  # type: ignore[arg-type]
    assert policy.delay_before_retry(3, error) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        BadRequest("bad", status_code=400),
        NotFound("gone", status_code=404),
        AuthenticationError("who", status_code=401),
        UnexpectedResponse("odd", status_code=201),
    ],
)
def test_other_errors_are_final(error: Exception) -> None:
    assert RetryPolicy().delay_before_retry(1, error) is None  # type: ignore[arg-type]


def test_retry_after_replaces_backoff_unless_too_long() -> None:
    policy = RetryPolicy(max_retry_after=60.0, random=lambda: 0.0)
    assert policy.delay_before_retry(1, RateLimited("x", retry_after=12.0)) == 12.0
    assert policy.delay_before_retry(1, ServerError("x", retry_after=3.0)) == 3.0
    assert policy.delay_before_retry(1, RateLimited("x", retry_after=61.0)) is None


def test_call_with_retries_sleeps_between_attempts_and_reraises_the_last_error() -> None:
    sleeps: list[float] = []
    calls: list[int] = []

    def send() -> str:
        calls.append(1)
        raise ServerError(f"attempt {len(calls)}", status_code=502)

    policy = RetryPolicy(max_attempts=3, base_delay=0.1, random=lambda: 1.0)
    with pytest.raises(ServerError, match="attempt 3"):
        call_with_retries(send, policy, sleeps.append)
    assert sleeps == [0.1, 0.2]
    assert len(calls) == 3


def test_invalid_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)

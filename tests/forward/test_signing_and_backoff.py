"""Standard Webhooks signing (known answer, several secrets) and retry timing."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from tests.forward.support import SECRET_NEW, SECRET_OLD
from vlmhooks.errors import ConfigError, SignatureInvalid
from vlmhooks.forward.backoff import Backoff
from vlmhooks.forward.http import StandardWebhookSigner
from vlmhooks.retry_timing import backoff_delay, parse_retry_after
from vlmhooks.trust.signatures import verify_standard_webhook

# The Standard Webhooks reference test vector.
REFERENCE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REFERENCE_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
REFERENCE_TIMESTAMP = 1614265330
REFERENCE_BODY = b'{"test": 2432232314}'
REFERENCE_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_known_answer() -> None:
    signer = StandardWebhookSigner([REFERENCE_SECRET])
    assert signer.sign(REFERENCE_ID, REFERENCE_TIMESTAMP, REFERENCE_BODY) == REFERENCE_SIGNATURE


def test_every_secret_signs_and_each_verifies_alone() -> None:
    signature = StandardWebhookSigner([SECRET_OLD, SECRET_NEW]).sign("msg_1", 1000, b"{}")
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1000", "webhook-signature": signature}
    for secret in (SECRET_OLD, SECRET_NEW):
        verify_standard_webhook(b"{}", headers, [secret], now=1000)
    with pytest.raises(SignatureInvalid):
        other = "whsec_" + base64.b64encode(b"another-secret").decode()
        verify_standard_webhook(b"{}", headers, [other], now=1000)
    key = base64.b64decode(SECRET_OLD.removeprefix("whsec_"))
    expected = hmac.new(key, b"msg_1.1000.{}", hashlib.sha256).digest()
    assert "v1," + base64.b64encode(expected).decode() in signature.split(" ")


@pytest.mark.parametrize(
    ("secrets", "complaint"),
    [([], "VLMHOOKS_FORWARD_SECRET is not set"), (["nope"], "whsec_"), (["whpk_" + "A" * 43], "")],
)
def test_unusable_secrets_stop_start_up(secrets: list[str], complaint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        StandardWebhookSigner(secrets)
    assert complaint in caught.value.detail


def test_backoff_doubles_with_equal_jitter_up_to_the_cap() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0)
    assert [backoff.delay(n, lambda: 0.0) for n in (1, 2, 3, 4, 5, 9)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        4.0,
        4.0,
    ]
    assert [backoff.delay(n, lambda: 1.0) for n in (1, 2, 3, 4, 9)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert backoff.delay(1, lambda: 0.0, retry_after=30.0) == 30.0
    assert backoff.delay(1, lambda: 0.0, retry_after=10**9) == 3600.0


def test_equal_jitter_is_half_fixed_half_drawn() -> None:
    """The relay's policy over the shared formula, with draws strictly inside [0, 1)."""
    backoff = Backoff(initial=2.0, maximum=100.0)
    assert [backoff.delay(n, lambda: 0.25) for n in (0, 1, 2, 3, 6, 8)] == [
        1.25,
        1.25,
        2.5,
        5.0,
        40.0,
        62.5,  # capped: 100 / 2 + 0.25 * 100 / 2
    ]
    assert backoff.delay(3, lambda: 0.75, retry_after=6.5) == 7.0
    assert backoff.delay(3, lambda: 0.75, retry_after=7.5) == 7.5


@pytest.mark.parametrize(
    ("retry", "jitter", "draw", "seconds"),
    [
        (0, 0.0, 0.9, 0.5),  # no jitter: the draw is ignored
        (3, 0.0, 0.0, 4.0),
        (6, 0.0, 0.0, 30.0),  # capped
        (-1, 0.0, 0.0, 0.5),  # a retry number below 0 is the first retry
        (2, 0.5, 0.0, 1.0),  # equal jitter: half fixed...
        (2, 0.5, 0.5, 1.5),  # ...half drawn
        (2, 1.0, 0.25, 0.5),  # full jitter: all drawn
        (2, 1.0, 0.0, 0.0),
        (10**6, 1.0, 0.5, 15.0),  # a million failures: capped, no OverflowError
    ],
)
def test_backoff_formula_known_answers(
    retry: int, jitter: float, draw: float, seconds: float
) -> None:
    assert backoff_delay(retry, base=0.5, cap=30.0, jitter=jitter, draw=draw) == seconds


def test_retry_after_as_seconds_or_http_date() -> None:
    now = 1795521600.0  # 2026-11-24T12:00:00Z
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after("Tue, 24 Nov 2026 12:01:00 GMT", now=now) == 60.0
    assert parse_retry_after("Tue, 24 Nov 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None, now=now) is None


def test_retry_after_is_as_lenient_for_destinations_as_for_the_api() -> None:
    """Both were refused here once (a second parser, stricter than the client's)."""
    now = 1795521600.0  # 2026-11-24T12:00:00Z
    assert parse_retry_after("1.5", now=now) == 1.5
    assert parse_retry_after("Tue, 24 Nov 2026 12:00:30", now=now) == 30.0  # no zone: GMT
    assert parse_retry_after("Tue, 24 Nov 2026 12:00:30 +0100", now=now) == 0.0  # 11:00:30Z

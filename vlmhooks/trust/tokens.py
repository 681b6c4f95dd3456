"""Callback tokens: the signed, expiring path segment that binds a callback URL to one submission.

Shared by the submitter (mint) and the receiver (verify); the token carries only the submission id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from itsdangerous import (
    BadData,
    BadPayload,
    BadSignature,
    TimestampSigner,
    URLSafeTimedSerializer,
)
from itsdangerous.encoding import bytes_to_int

from vlmhooks.errors import ConfigError, TokenExpired, TokenInvalid

__all__ = [
    "CALLBACK_PATH_PREFIX",
    "DEFAULT_CLOCK_SKEW_SECONDS",
    "DEFAULT_MAX_AGE_SECONDS",
    "CallbackTokens",
    "clocked_serializer",
    "mint_callback_url",
    "mint_callback_urls",
    "new_submission_id",
]

DEFAULT_MAX_AGE_SECONDS = 7 * 24 * 3600
DEFAULT_CLOCK_SKEW_SECONDS = 60
# Where the receiver takes callbacks; the token is the one path segment after it.
CALLBACK_PATH_PREFIX = "/v1/callbacks/"

# Changing the salt or digest invalidates every token in flight.
_SALT = "vlmhooks.callback-token"
_CROCKFORD_BASE32 = "0123456789abcdefghjkmnpqrstvwxyz"


class _ClockedSigner(TimestampSigner):
    # itsdangerous reads time.time() in get_timestamp for both signing and the max-age check.
    def __init__(self, *args: Any, clock: Callable[[], float], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())

    def derive_key(self, secret_key: Any = None) -> bytes:
        # The derived key is a pure function of the secret; itsdangerous recomputes it on
        # every sign/unsign, which is a measurable share of a callback's CPU.
        if secret_key is not None:
            return super().derive_key(secret_key)
        cached: bytes | None = getattr(self, "_derived", None)
        if cached is None:
            cached = self._derived = super().derive_key()
        return cached


def clocked_serializer(
    secret_keys: Sequence[str], *, salt: str, clock: Callable[[], float]
) -> URLSafeTimedSerializer:
    """A SHA-256 timed serializer over `secret_keys` (oldest to newest) that reads `clock`."""
    return URLSafeTimedSerializer(
        list(secret_keys),
        salt=salt,
        signer=_ClockedSigner,
        signer_kwargs={"clock": clock, "digest_method": hashlib.sha256},
    )


def _b64decode(text: str) -> bytes:
    """itsdangerous's `base64_decode` (URL-safe, padding restored), minus its per-call
    wrapping: a callback decodes three pieces of its token."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as exc:  # binascii.Error is a ValueError
        raise BadData("invalid base64-encoded data") from exc


class CallbackTokens:
    """Mint and verify callback tokens; keys oldest to newest, the newest signs, any verifies."""

    def __init__(
        self,
        secret_keys: Sequence[str],
        *,
        max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
        clock_skew_seconds: int = DEFAULT_CLOCK_SKEW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(secret_keys, str):
            raise ConfigError("callback token keys must be a list of strings, not one string")
        if not secret_keys:
            raise ConfigError("no callback token secret key configured")
        if not all(secret_keys):
            raise ConfigError("callback token secret keys must not be empty")
        if max_age_seconds <= 0:
            raise ConfigError("callback token max age must be positive")
        if clock_skew_seconds < 0:
            raise ConfigError("callback token clock skew must not be negative")
        self._max_age = max_age_seconds
        # The worker that mints and the web process that verifies may run on hosts whose
        # clocks disagree; a token up to this far "in the future" is still accepted.
        self._clock_skew = clock_skew_seconds
        self._clock = clock
        self._serializer = clocked_serializer(secret_keys, salt=_SALT, clock=clock)
        # Newest key first, as itsdangerous tries them; derived and keyed once, not per call:
        # each check copies a keyed HMAC instead of hashing the key's pads again.
        signer = self._serializer.make_signer()
        self._macs = [
            hmac.new(signer.derive_key(key), digestmod="sha256")
            for key in reversed(signer.secret_keys)
        ]

    def __repr__(self) -> str:
        keys = len(self._serializer.secret_keys)
        return f"CallbackTokens(keys=<{keys} hidden>, max_age={self._max_age})"

    def _loads(self, token: str) -> Any:
        """`URLSafeTimedSerializer.loads`, flattened: one HMAC per candidate key with keys
        derived at start-up, no signer objects per call; and the age checked here, since
        itsdangerous refuses any timestamp ahead of our clock (see `clock_skew_seconds`).
        Kept by hand because itsdangerous's own `loads` costs more than 2% of a callback's
        CPU (bench/README.md, "Issue 29: the standard library's HMAC, itsdangerous's loads").
        """
        signed, _, signature = token.rpartition(".")
        payload, _, stamp = signed.rpartition(".")
        if not payload or not stamp:
            raise BadSignature("callback token is malformed")
        expected = _b64decode(signature)  # BadData when not base64
        message = signed.encode("ascii")
        for keyed in self._macs:
            mac = keyed.copy()
            mac.update(message)
            if hmac.compare_digest(mac.digest(), expected):
                break
        else:
            raise BadSignature("callback token signature does not match")
        # Authentic: the age decides now, and an expired signature is final, whichever key
        # made it. Whole seconds, as itsdangerous counts.
        age = int(self._clock()) - bytes_to_int(_b64decode(stamp))
        if age < -self._clock_skew:
            raise TokenInvalid("callback token is dated in the future")
        if age > self._max_age:
            raise TokenExpired("callback token expired")
        if payload.startswith("."):  # zlib-compressed by itsdangerous (long ids only)
            return self._serializer.load_payload(payload.encode("ascii"))
        try:
            return orjson.loads(_b64decode(payload))
        except orjson.JSONDecodeError as exc:
            raise BadPayload("callback token payload is not JSON") from exc

    def mint(self, submission_id: str) -> str:
        if not submission_id:
            raise ValueError("submission_id must not be empty")
        return self._serializer.dumps({"s": submission_id})

    def verify(self, token: str) -> str:
        """The submission id the token was minted for, else `TokenExpired` / `TokenInvalid`."""
        if not token.isascii():
            raise TokenInvalid("callback token is malformed")
        try:
            payload = self._loads(token)
        except BadData as exc:
            raise TokenInvalid("callback token is invalid") from exc
        if not isinstance(payload, dict) or payload.keys() != {"s"}:
            raise TokenInvalid("callback token payload has the wrong shape")
        submission_id = payload["s"]
        if not isinstance(submission_id, str) or not submission_id:
            raise TokenInvalid("callback token payload has the wrong shape")
        return submission_id


def mint_callback_url(public_url: str, tokens: CallbackTokens, submission_id: str) -> str:
    """The `callback_url` to send with a submission: `<public_url>/v1/callbacks/<token>`."""
    return f"{public_url.rstrip('/')}{CALLBACK_PATH_PREFIX}{tokens.mint(submission_id)}"


def mint_callback_urls(
    public_url: str, tokens: CallbackTokens, count: int, submission_id: str | None = None
) -> list[tuple[str, str]]:
    """`count` (url, submission id) pairs; each URL gets a fresh id unless one is given.

    One id for several URLs is refused: a submission id names one request, and predictions
    called back through several URLs of one id could no longer be told apart.
    """
    if submission_id is not None and count != 1:
        raise ValueError("a submission id binds exactly one callback URL")
    ids = [submission_id] if submission_id else [new_submission_id() for _ in range(count)]
    return [(mint_callback_url(public_url, tokens, each), each) for each in ids]


def new_submission_id(*, now: float | None = None) -> str:
    """`sub_` + 26 lowercase Crockford base32 characters, ULID layout: 48-bit Unix milliseconds
    then 80 random bits, so ids sort by creation time (to the millisecond).
    """
    millis = int((time.time() if now is None else now) * 1000)
    if not 0 <= millis < 1 << 48:
        raise ValueError("now is outside the ULID time range")
    value = (millis << 80) | secrets.randbits(80)
    chars = [_CROCKFORD_BASE32[(value >> shift) & 31] for shift in range(125, -5, -5)]
    return "sub_" + "".join(chars)

"""Provider webhook signatures, sign and verify: VLM Run's `X-VLMRun-Signature` and Standard
Webhooks (`v1` HMAC-SHA256, `v1a` ed25519). Verification failures raise `SignatureInvalid` only;
secrets are parsed into verifiers once (`parse_*_secrets`), then used for every request.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vlmhooks.errors import ConfigError, SignatureInvalid, TimestampOutOfTolerance

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "VLMRUN_SIGNATURE_HEADER",
    "StandardWebhookSecret",
    "StandardWebhookVerdict",
    "StandardWebhookVerifier",
    "VlmrunVerifier",
    "parse_standard_webhook_secret",
    "parse_standard_webhook_secrets",
    "parse_vlmrun_secrets",
    "sign_standard_webhook",
    "sign_vlmrun",
    "standard_webhook_headers",
    "verify_standard_webhook",
    "verify_vlmrun_signature",
]

VLMRUN_SIGNATURE_HEADER = "X-VLMRun-Signature"
# How far a webhook-timestamp may be from now, either way (the Standard Webhooks default).
DEFAULT_TOLERANCE_SECONDS = 300

_VLMRUN_PREFIX = "sha256="
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# No "." in the id: with one, "a.1" + ts "2" and "a" + ts "1.2" would sign the same content
# (the spec's advice), letting a signed message be replayed under another id and body.
_MSG_ID = re.compile(r"[\x21-\x2d\x2f-\x7e]{1,256}")
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
# Bounds the ed25519 work one unauthenticated request can ask for: well-formed entries past
# this many are not tried (malformed ones cost a split and are skipped).
_MAX_SIGNATURES = 16
_SIGNATURE_LENGTHS = {"v1": 32, "v1a": 64}
_HEADER_NAMES = ("webhook-id", "webhook-timestamp", "webhook-signature")


@dataclass(frozen=True)
class StandardWebhookSecret:
    """A parsed `whsec_` (HMAC key), `whpk_` (ed25519 public key) or `whsk_` (ed25519 seed)."""

    kind: Literal["whsec", "whpk", "whsk"]
    key: bytes = field(repr=False)


@dataclass(frozen=True)
class StandardWebhookVerdict:
    """A verified delivery; `msg_id` is the idempotency key for de-duplicating replays."""

    msg_id: str
    timestamp: int


def sign_vlmrun(secret: str, body: bytes) -> str:
    """The `X-VLMRun-Signature` header value for `body`."""
    digest = hmac.digest(_vlmrun_key(secret), body, "sha256").hex()
    return _VLMRUN_PREFIX + digest


@dataclass(frozen=True)
class VlmrunVerifier:
    """Checks `X-VLMRun-Signature` under any of its keys (several during a rotation)."""

    keys: tuple[bytes, ...] = field(repr=False)
    _macs: tuple[hmac.HMAC, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_macs", tuple(_keyed(key) for key in self.keys))

    def verify(self, body: bytes, header: str | None) -> None:
        """Accept if `header` is `sha256=<hex HMAC-SHA256>` of `body` under any key."""
        if header is None:
            raise SignatureInvalid(f"missing {VLMRUN_SIGNATURE_HEADER} header")
        if not header.startswith(_VLMRUN_PREFIX):
            raise SignatureInvalid(f"{VLMRUN_SIGNATURE_HEADER} must start with {_VLMRUN_PREFIX}")
        hex_digest = header[len(_VLMRUN_PREFIX) :]
        if not _HEX_SHA256.fullmatch(hex_digest):
            raise SignatureInvalid(f"{VLMRUN_SIGNATURE_HEADER} must carry 64 hex digits")
        received = bytes.fromhex(hex_digest)
        expected = (_mac_of(mac, body) for mac in self._macs)
        if not any(hmac.compare_digest(received, digest) for digest in expected):
            raise SignatureInvalid(f"{VLMRUN_SIGNATURE_HEADER} does not match")


def parse_vlmrun_secrets(secrets: Sequence[str]) -> VlmrunVerifier:
    """The verifier for `secrets`; `ConfigError` if the list or any secret is unusable."""
    return VlmrunVerifier(tuple(_vlmrun_key(secret) for secret in _non_empty(secrets)))


def verify_vlmrun_signature(body: bytes, header: str | None, secrets: Sequence[str]) -> None:
    """Accept if `header` is `sha256=<hex HMAC-SHA256>` of `body` under any of `secrets`."""
    parse_vlmrun_secrets(secrets).verify(body, header)


def parse_standard_webhook_secret(secret: str) -> StandardWebhookSecret:
    """Parse and check a Standard Webhooks secret; `ConfigError` if it is unusable."""
    kind, underscore, encoded = secret.partition("_")
    if not underscore or kind not in ("whsec", "whpk", "whsk"):
        raise ConfigError("Standard Webhooks secret must start with whsec_, whpk_ or whsk_")
    try:
        # Unpadded base64 is common in the wild; the reference library accepts it too.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except ValueError as exc:
        raise ConfigError(f"{kind}_ secret is not valid base64") from exc
    if kind == "whsec":
        if not key:
            raise ConfigError("whsec_ secret is empty")
        return StandardWebhookSecret("whsec", key)
    if kind == "whpk":
        _public_key(key)
        return StandardWebhookSecret("whpk", key)
    # libsodium writes ed25519 secret keys as seed || public key; accept that form too.
    if len(key) not in (32, 64):
        raise ConfigError("whsk_ secret must be a 32-byte ed25519 seed (or 64-byte seed+public)")
    seed = key[:32]
    if len(key) == 64 and _public_bytes(seed) != key[32:]:
        raise ConfigError("whsk_ secret: public half does not match the seed")
    return StandardWebhookSecret("whsk", seed)


def sign_standard_webhook(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `webhook-signature` entry: `v1,<b64>` for `whsec_`, `v1a,<b64>` for `whsk_`.

    A `whpk_` secret cannot sign (`ConfigError`); a `msg_id` the receiver would reject, or a
    negative timestamp, is a caller bug (`ValueError`).
    """
    parsed = parse_standard_webhook_secret(secret)
    if not _MSG_ID.fullmatch(msg_id):
        raise ValueError("msg_id must be 1-256 printable ASCII characters without '.' or spaces")
    if timestamp < 0:
        raise ValueError("timestamp must be non-negative")
    content = _signed_content(msg_id, str(timestamp), body)
    if parsed.kind == "whsec":
        mac = hmac.digest(parsed.key, content, "sha256")
        return "v1," + base64.b64encode(mac).decode("ascii")
    if parsed.kind == "whsk":
        signature = Ed25519PrivateKey.from_private_bytes(parsed.key).sign(content)
        return "v1a," + base64.b64encode(signature).decode("ascii")
    raise ConfigError("a whpk_ public key cannot sign; use the whsk_ secret key")


def standard_webhook_headers(
    secret: str, msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers a sender attaches to `body`."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_standard_webhook(secret, msg_id, timestamp, body),
    }


@dataclass(frozen=True)
class StandardWebhookVerifier:
    """Checks Standard Webhooks headers under parsed keys; build it with
    `parse_standard_webhook_secrets`, once, not per request.
    """

    hmac_keys: tuple[bytes, ...] = field(repr=False)
    # Derived once: deriving an ed25519 public key per request would cost more than verifying.
    public_keys: tuple[Ed25519PublicKey, ...] = field(repr=False)
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS
    _macs: tuple[hmac.HMAC, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_macs", tuple(_keyed(key) for key in self.hmac_keys))

    def verify(
        self, body: bytes, headers: Mapping[str, str], *, now: float
    ) -> StandardWebhookVerdict:
        """Accept if any `webhook-signature` entry verifies under any key and the timestamp is
        within `tolerance_seconds` of `now`. Header names are matched case-insensitively.
        """
        msg_id, timestamp_text, signature_text = _webhook_header_values(headers)
        if not _MSG_ID.fullmatch(msg_id):
            raise SignatureInvalid("malformed webhook-id header")
        if not _TIMESTAMP.fullmatch(timestamp_text):
            raise SignatureInvalid("webhook-timestamp must be integer seconds since the epoch")
        timestamp = int(timestamp_text)
        # Written as "not within" so a NaN `now` rejects instead of accepting everything.
        if not abs(now - timestamp) <= self.tolerance_seconds:
            raise TimestampOutOfTolerance(
                f"webhook-timestamp is more than {self.tolerance_seconds} s away from now"
            )
        entries, skipped = _parse_signature_header(signature_text)
        if not entries:
            raise SignatureInvalid(skipped or "no webhook-signature entry")
        content = _signed_content(msg_id, timestamp_text, body)
        expected_v1 = [_mac_of(mac, content) for mac in self._macs]
        verdict = StandardWebhookVerdict(msg_id=msg_id, timestamp=timestamp)
        for version, signature in entries:
            if version == "v1":
                if any(hmac.compare_digest(signature, digest) for digest in expected_v1):
                    return verdict
                continue
            for public_key in self.public_keys:
                try:
                    public_key.verify(signature, content)
                except InvalidSignature:
                    continue
                return verdict
        raise SignatureInvalid("no webhook-signature entry matches a configured secret")


def parse_standard_webhook_secrets(
    secrets: Sequence[str], *, tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS
) -> StandardWebhookVerifier:
    """The verifier for `secrets`; `ConfigError` if the list, a secret or the tolerance is
    unusable.
    """
    if tolerance_seconds < 0:
        raise ConfigError("tolerance_seconds must be non-negative")
    parsed = [parse_standard_webhook_secret(secret) for secret in _non_empty(secrets)]
    return StandardWebhookVerifier(
        hmac_keys=tuple(p.key for p in parsed if p.kind == "whsec"),
        public_keys=tuple(
            _public_key(_ed25519_public_bytes(p)) for p in parsed if p.kind != "whsec"
        ),
        tolerance_seconds=tolerance_seconds,
    )


def verify_standard_webhook(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    *,
    now: float,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> StandardWebhookVerdict:
    """`parse_standard_webhook_secrets` then `verify`, for one-off checks (tests, tools)."""
    verifier = parse_standard_webhook_secrets(secrets, tolerance_seconds=tolerance_seconds)
    return verifier.verify(body, headers, now=now)


def _non_empty(secrets: Sequence[str]) -> Sequence[str]:
    # A bare str is a Sequence[str] too; iterating it would make one secret per character.
    if isinstance(secrets, str):
        raise ConfigError("secrets must be a list of strings, not one string")
    if not secrets:
        raise ConfigError("no webhook secret configured")
    return secrets


def _vlmrun_key(secret: str) -> bytes:
    if not secret:
        raise ConfigError("VLM Run webhook secret is empty")
    try:
        return secret.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError("VLM Run webhook secret is not valid UTF-8 text") from exc


def _public_key(raw: bytes) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise ConfigError("whpk_ secret must be a 32-byte ed25519 public key") from exc


def _public_bytes(seed: bytes) -> bytes:
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _ed25519_public_bytes(secret: StandardWebhookSecret) -> bytes:
    return secret.key if secret.kind == "whpk" else _public_bytes(secret.key)


def _keyed(key: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 keyed once, at start-up: `_mac_of` copies it per message, so the key's
    pads are not hashed again on every callback, as `hmac.digest` would."""
    return hmac.new(key, digestmod="sha256")


def _mac_of(keyed: hmac.HMAC, message: bytes) -> bytes:
    mac = keyed.copy()
    mac.update(message)
    return mac.digest()


def _signed_content(msg_id: str, timestamp_text: str, body: bytes) -> bytes:
    # The body stays bytes: it is signed as sent, whatever its encoding.
    return msg_id.encode("ascii") + b"." + timestamp_text.encode("ascii") + b"." + body


def _webhook_header_values(headers: Mapping[str, str]) -> tuple[str, str, str]:
    found: dict[str, set[str]] = {name: set() for name in _HEADER_NAMES}
    for key, value in headers.items():
        values = found.get(key.lower())
        if values is not None:
            values.add(value)
    for name, values in found.items():
        if not values:
            raise SignatureInvalid(f"missing {name} header")
        if len(values) > 1:
            raise SignatureInvalid(f"conflicting {name} headers")
    msg_id, timestamp_text, signature_text = (found[name].pop() for name in _HEADER_NAMES)
    return msg_id, timestamp_text, signature_text


def _parse_signature_header(text: str) -> tuple[list[tuple[str, bytes]], str | None]:
    """The well-formed entries of `webhook-signature`, read as the reference library reads
    the list: an entry that is malformed, of the wrong length or of an unknown version is
    skipped, so one bad entry never hides a good one. With the entries, why the first skipped
    one was skipped: the reason a header with no usable entry at all is refused.
    """
    parsed: list[tuple[str, bytes]] = []
    skipped: str | None = None
    for entry in text.split(" "):
        version, _, encoded = entry.partition(",")
        length = _SIGNATURE_LENGTHS.get(version)
        reason = None
        if not version or not encoded:
            reason = "malformed webhook-signature entry"
        elif length is None:
            # Unknown versions are skipped so a future scheme can travel alongside v1.
            reason = f"unknown webhook-signature version {version[:16]!r}"
        else:
            try:
                signature = base64.b64decode(encoded, validate=True)
            except ValueError:
                reason = "webhook-signature entry is not valid base64"
            else:
                if len(signature) == length:
                    parsed.append((version, signature))
                    if len(parsed) == _MAX_SIGNATURES:
                        break
                    continue
                reason = f"{version} signature must be {length} bytes"
        if skipped is None:
            skipped = reason
    return parsed, skipped

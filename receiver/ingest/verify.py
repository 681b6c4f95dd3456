"""The provider-signature and media-type checks of a callback: bytes and headers in, a verdict
or one of our exceptions out. No framework imports; time is a parameter.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vlmhooks.errors import SignatureInvalid, UnsupportedMediaType
from vlmhooks.settings import Settings
from vlmhooks.trust.signatures import (
    DEFAULT_TOLERANCE_SECONDS,
    VLMRUN_SIGNATURE_HEADER,
    StandardWebhookVerifier,
    VlmrunVerifier,
    parse_standard_webhook_secrets,
    parse_vlmrun_secrets,
)

__all__ = [
    "HeaderPairs",
    "SignaturePolicy",
    "require_json_content_type",
    "verify_provider_signatures",
]

_VLMRUN_HEADER = VLMRUN_SIGNATURE_HEADER.lower()


@dataclass(frozen=True)
class SignaturePolicy:
    """Which provider signatures a callback must carry, as verifiers parsed once at start-up;
    `None` turns a scheme off.
    """

    vlmrun: VlmrunVerifier | None = None
    standard: StandardWebhookVerifier | None = None

    @classmethod
    def from_secrets(
        cls,
        *,
        vlmrun_secrets: Sequence[str] = (),
        standard_secrets: Sequence[str] = (),
        tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    ) -> SignaturePolicy:
        """Parse every secret now: an unusable one is a `ConfigError` at start, not a 500 later."""
        return cls(
            vlmrun=parse_vlmrun_secrets(vlmrun_secrets) if vlmrun_secrets else None,
            standard=(
                parse_standard_webhook_secrets(
                    standard_secrets, tolerance_seconds=tolerance_seconds
                )
                if standard_secrets
                else None
            ),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SignaturePolicy:
        return cls.from_secrets(
            vlmrun_secrets=[s.get_secret_value() for s in settings.vlmrun_webhook_secrets],
            standard_secrets=[s.get_secret_value() for s in settings.standard_webhook_secrets],
            tolerance_seconds=settings.signature_tolerance,
        )


class HeaderPairs(Mapping[str, str]):
    """A request's headers decoded once: `items()` keeps every pair, repeats included (what
    the signature checks need), and a lookup gives the first value, as Starlette's does."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs
        self._first: dict[str, str] = {}
        for name, value in pairs:
            self._first.setdefault(name, value)

    def __getitem__(self, name: str) -> str:
        return self._first[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return self._pairs

    def get(self, name: str, default: Any = None) -> Any:
        return self._first.get(name, default)


def verify_provider_signatures(
    body: bytes, headers: Mapping[str, str], policy: SignaturePolicy, *, now: float
) -> str | None:
    """Check every configured scheme over the raw `body`; all must pass.

    Returns the Standard Webhooks `webhook-id` (the replay key) when that scheme is on.
    `headers` names must be lower-case; repeated headers may appear in `items()`.
    """
    if policy.vlmrun is not None:
        policy.vlmrun.verify(body, _single_header(headers, _VLMRUN_HEADER))
    if policy.standard is None:
        return None
    return policy.standard.verify(body, headers, now=now).msg_id


def require_json_content_type(content_type: str | None) -> None:
    """Accept `application/json` and `application/*+json`, in UTF-8; else 415."""
    if content_type is None:
        raise UnsupportedMediaType("Content-Type is missing; send application/json")
    media_type, _, parameters = content_type.partition(";")
    media_type = media_type.strip().lower()
    kind, slash, subtype = media_type.partition("/")
    if not (kind == "application" and slash and (subtype == "json" or subtype.endswith("+json"))):
        raise UnsupportedMediaType(
            f"Content-Type {media_type or '(empty)'!r} is not JSON; send application/json"
        )
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        # JSON on the wire is UTF-8 (RFC 8259 section 8.1); another declared charset means
        # the bytes we would parse are not what the sender meant.
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise UnsupportedMediaType(f"charset {value.strip()!r} is not supported; use utf-8")


def _single_header(headers: Mapping[str, str], name: str) -> str | None:
    # A repeated signature header is ambiguous (which one was meant?): refuse it, as
    # StandardWebhookVerifier does for its own headers.
    values = {value for key, value in headers.items() if key == name}
    if len(values) > 1:
        raise SignatureInvalid(f"conflicting {name} headers")
    return values.pop() if values else None

"""What the delivery log keeps of one received request: selected headers, the capped raw body
and its hash.
"""

from __future__ import annotations

from collections.abc import Iterable

from vlmhooks.store import DeliveryRecord, sha256_hex

__all__ = ["AUDITED_HEADERS", "MAX_HEADER_VALUE_CHARS", "delivery_record"]

# Enough to replay a delivery and tell senders apart. Signatures are kept (they are
# not secrets: they prove nothing without the body and let a replay be re-verified);
# Authorization and cookies are never kept.
AUDITED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-vlmrun-signature",
        "x-forwarded-for",
        "x-request-id",
    }
)
# A sender controls header sizes; the audit row must stay small.
MAX_HEADER_VALUE_CHARS = 1024


def delivery_record(
    body: bytes, headers: Iterable[tuple[str, str]], *, body_cap: int
) -> DeliveryRecord:
    """The audit view of a request; `headers` as lower-case (name, value) pairs."""
    kept: dict[str, str] = {}
    for name, value in headers:
        if name in AUDITED_HEADERS:
            value = value[:MAX_HEADER_VALUE_CHARS]
            # Repeated headers are joined, as HTTP allows, so none is silently lost.
            kept[name] = f"{kept[name]}, {value}" if name in kept else value
    truncated = len(body) > body_cap
    return DeliveryRecord(
        body_sha256=sha256_hex(body),
        headers=kept,
        body=body[:body_cap] if truncated else body,
        body_truncated=truncated,
    )

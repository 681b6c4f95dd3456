"""The delivery log: what it keeps of one received request (selected headers, the capped raw
body and its hash), the one builder of its rows, and logging a refused delivery.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from vlmhooks.store.records import DeliveryRecord, DeliveryVerdict, sha256_hex
from vlmhooks.store.statements import DELIVERY_KEY_PARAM, write_statements

__all__ = [
    "AUDITED_HEADERS",
    "MAX_HEADER_VALUE_CHARS",
    "MAX_REASON_CHARS",
    "delivery_record",
    "delivery_row",
    "log_rejected_delivery",
]

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
# A reason may quote sender input (a conflict's ids, an error's detail); same reasoning.
MAX_REASON_CHARS = 2000


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


def delivery_row(
    record: DeliveryRecord,
    *,
    prediction_id: str | None,
    submission_id: str | None,
    source: str,
    received_at: datetime,
    verdict: DeliveryVerdict,
    reason: str | None,
    http_status: int,
) -> dict[str, Any]:
    """One `delivery` row: every verdict, accepted or refused, is logged through here."""
    return {
        "prediction_id": prediction_id,
        "submission_id": submission_id,
        "received_at": received_at,
        "verdict": verdict,
        "reason": None if reason is None else _storable_reason(reason),
        "http_status": http_status,
        "source": source,
        "body_sha256": record.body_sha256,
        "headers": record.headers or None,
        "body": record.body,
        "body_truncated": record.body_truncated,
    }


def log_rejected_delivery(
    connection: Connection,
    *,
    prediction_id: str | None,
    submission_id: str | None,
    source: str,
    received_at: datetime,
    delivery: DeliveryRecord,
    reason: str,
    http_status: int,
) -> None:
    """Audit a delivery that passed the token check but was refused."""
    row = delivery_row(
        delivery,
        prediction_id=prediction_id,
        submission_id=submission_id,
        source=source,
        received_at=received_at,
        verdict="rejected",
        reason=reason,
        http_status=http_status,
    )
    row[DELIVERY_KEY_PARAM] = prediction_id
    connection.execute(write_statements(connection).insert_delivery, row)


def _storable_reason(reason: str) -> str:
    # PostgreSQL text cannot hold U+0000, so it is written as its JSON escape.
    return reason.replace("\x00", "\\u0000")[:MAX_REASON_CHARS]

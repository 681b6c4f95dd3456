"""What a write batch puts in each row.

`vlmhooks/store/batch.py` decides, write by write, what the batch's statements will do; this
module holds the pieces that are about one row, not about the batch: the prediction row's
values, its delivery-log row, its event row, and a stored row as the batch knows it (the
rule that moves it forward is vlmhooks/store/forward_only.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from schemas.enums import STATUS_RANK
from vlmhooks.ingest.storable import MAX_DOMAIN_CHARS, storable_content_hash, usage_json
from vlmhooks.public import public_prediction
from vlmhooks.store.audit import delivery_row
from vlmhooks.store.records import DeliveryVerdict, PredictionWrite

__all__ = [
    "ROW_ALLOWANCE",
    "StoredPrediction",
    "SubmissionContext",
    "advance",
    "content_hash",
    "delivery_bytes",
    "delivery_row_of",
    "event_row",
    "prediction_values",
    "same_message",
]


@dataclass(frozen=True, slots=True)
class SubmissionContext:
    """What a batch reads of a submission row: its recorded prediction id, its domain and
    the JSON schema its responses are checked against."""

    prediction_id: str | None
    domain: str | None
    json_schema: dict[str, Any] | None


@dataclass(slots=True)
class StoredPrediction:
    """A prediction row as the batch knows it: read, then advanced by each planned write."""

    status: str
    rank: int
    body_sha256: str
    delivery_count: int
    received_at: datetime
    submission_id: str | None
    domain: str | None


# The ids, timestamps and small fields of a row, which `payload_bytes` does not count one
# by one: sized from a bench callback's, so the estimate stays close to the exact count
# (which decides where a batch runs; bench/README.md, "Issue 13, seventh pass").
ROW_ALLOWANCE = 256


def delivery_bytes(row: dict[str, Any]) -> int:
    body: bytes | None = row["body"]
    headers: dict[str, str] | None = row["headers"]
    return (
        (len(body) if body is not None else 0)
        + (sum(map(len, headers.values())) if headers else 0)
        + ROW_ALLOWANCE
    )


def same_message(
    first: tuple[str | None, str | None], prediction_id: str, body_sha256: str
) -> bool:
    first_prediction_id, first_body_sha256 = first
    if first_body_sha256 is None:
        # Accepted before revision 0002 recorded body hashes: the prediction id is all we have.
        return first_prediction_id == prediction_id
    return first_body_sha256 == body_sha256


def content_hash(write: PredictionWrite) -> str:
    return write.content_sha256 or storable_content_hash(write.prediction)


def delivery_row_of(
    write: PredictionWrite, verdict: DeliveryVerdict, reason: str | None, http_status: int
) -> dict[str, Any]:
    """The delivery row of `write`, through the delivery log's one builder."""
    return delivery_row(
        write.delivery,
        prediction_id=write.prediction.id,
        submission_id=write.submission_id,
        source=write.source,
        received_at=write.received_at,
        verdict=verdict,
        reason=reason,
        http_status=http_status,
    )


def prediction_values(
    write: PredictionWrite,
    submission: SubmissionContext | None,
    schema_valid: bool | None,
    schema_errors: list[str] | None,
    response_json: bytes,
) -> dict[str, Any]:
    prediction = write.prediction
    extra = prediction.extra_fields
    domain = extra.get("domain")
    if not isinstance(domain, str) or len(domain) > MAX_DOMAIN_CHARS:
        domain = None  # still kept verbatim among the unknown fields (`extra`)
    if domain is None and submission is not None:
        domain = submission.domain
    status = prediction.status
    return {
        "id": prediction.id,
        "submission_id": write.submission_id,
        "domain": domain,
        "status": status.value,
        "status_rank": STATUS_RANK[status],
        # Serialized once, for the row and for its event's data (an orjson fragment goes
        # into the event's JSON as it is).
        "response": orjson.Fragment(response_json),
        "usage": usage_json(prediction.usage),
        "extra": extra or None,
        "created_at": prediction.created_at,
        "completed_at": prediction.completed_at,
        "received_at": write.received_at,
        "updated_at": write.received_at,
        "delivery_count": 1,
        "source": write.source,
        "body_sha256": content_hash(write),
        "schema_valid": schema_valid,
        "schema_errors": schema_errors,
    }


def advance(stored: StoredPrediction, row: dict[str, Any]) -> None:
    """`stored` as the upsert leaves it after applying `row` (which moves it forward)."""
    stored.status, stored.rank = row["status"], row["status_rank"]
    stored.body_sha256 = row["body_sha256"]
    stored.delivery_count += 1
    # The upsert's coalesces: the first owner stays, a known domain stays.
    stored.submission_id = stored.submission_id or row["submission_id"]
    stored.domain = row["domain"] if row["domain"] is not None else stored.domain


def event_row(row: dict[str, Any], stored: StoredPrediction) -> dict[str, Any]:
    """The event of a write that moved its prediction, with the row as GET will show it
    once the batch commits (the upsert's result, as `stored` now holds it)."""
    return {
        "prediction_id": row["id"],
        "type": f"prediction.{row['status']}",
        "data": public_prediction(
            {
                **row,
                "delivery_count": stored.delivery_count,
                "received_at": stored.received_at,
                "submission_id": stored.submission_id,
                "domain": stored.domain,
            }
        ),
        "created_at": row["received_at"],
    }

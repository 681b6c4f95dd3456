"""The values the write path passes around: a parsed delivery ready to apply, what the audit
log keeps of its request, and the verdict it got. No SQL here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from schemas.contract import PredictionResponse

__all__ = [
    "DeliveryRecord",
    "DeliveryVerdict",
    "IngestOutcome",
    "PredictionWrite",
    "Verdict",
    "sha256_hex",
]

Verdict = Literal["stored", "updated", "duplicate", "stale"]
DeliveryVerdict = Literal["stored", "updated", "duplicate", "stale", "replay", "rejected"]


@dataclass(frozen=True)
class DeliveryRecord:
    """What the audit log keeps of one received request."""

    body_sha256: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    body_truncated: bool = False


@dataclass(frozen=True)
class PredictionWrite:
    """One verified, parsed delivery, ready to apply."""

    prediction: PredictionResponse
    submission_id: str | None
    source: str
    received_at: datetime
    delivery: DeliveryRecord
    webhook_id: str | None = None
    # The dedup hash of `prediction`, when the caller already computed it (see storable),
    # and the size of the JSON it hashed: about what the prediction adds to a batch's
    # statements, counted by `PredictionBatch.payload_bytes`.
    content_sha256: str | None = None
    content_bytes: int | None = None


@dataclass(frozen=True)
class IngestOutcome:
    prediction_id: str
    status: str
    verdict: Verdict
    event_seq: int | None = None
    schema_valid: bool | None = None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

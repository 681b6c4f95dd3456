"""One prediction validated and stored in a transaction of its own, with no HTTP involved:
the submitter's `batch: false` results, `reconcile`, and tests."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from schemas.contract import PredictionResponse, utc_now
from vlmhooks.ingest.prediction import validate_prediction
from vlmhooks.ingest.storable import storable_content
from vlmhooks.store.batch import apply_prediction_write
from vlmhooks.store.records import DeliveryRecord, IngestOutcome, PredictionWrite, sha256_hex

__all__ = ["ingest_prediction"]


def ingest_prediction(
    engine: Engine,
    payload: Mapping[str, Any] | PredictionResponse,
    *,
    submission_id: str | None,
    source: str,
    now: datetime | None = None,
) -> IngestOutcome:
    """Validate and store one prediction in its own transaction (no HTTP involved)."""
    prediction = (
        payload if isinstance(payload, PredictionResponse) else validate_prediction(payload)
    )
    content_hash, content_bytes = storable_content(prediction)
    body = orjson.dumps(prediction.to_wire())
    write = PredictionWrite(
        prediction=prediction,
        submission_id=submission_id,
        source=source,
        received_at=now or utc_now(),
        delivery=DeliveryRecord(body_sha256=sha256_hex(body), body=body),
        content_sha256=content_hash,
        content_bytes=content_bytes,
    )
    with engine.begin() as connection:
        return apply_prediction_write(connection, write)

"""Read-only queries behind the lookup API, each returning JSON-ready dicts.

Everything here is synchronous SQLAlchemy Core; handlers run it in the thread pool.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from schemas.contract import as_utc
from schemas.enums import Status
from vlmhooks.public import PredictionBody, iso_utc, public_prediction
from vlmhooks.reads.pagination import DeliveryKey, PredictionKey
from vlmhooks.reads.shapes import SUBMISSION_DELIVERY_HISTORY, BodyEncoding, Delivery, Submission
from vlmhooks.store.tables import (
    DELIVERY,
    EVENT,
    PREDICTION,
    PREDICTION_READ,
    SUBMISSION,
    deliveries_of_prediction,
)
from vlmhooks.trust.tokens import CALLBACK_PATH_PREFIX

__all__ = [
    "PredictionFilters",
    "StoredEvent",
    "count_predictions_by_status",
    "event_rows_after",
    "events_after",
    "get_prediction",
    "get_submission",
    "last_event_seq",
    "list_deliveries",
    "list_predictions",
    "prediction_row",
    "public_delivery",
]
REDACTED = "<redacted>"


@dataclass(frozen=True)
class PredictionFilters:
    status: Status | None = None
    domain: str | None = None
    submission_id: str | None = None
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    type: str
    data: dict[str, Any]


def _storable(value: str) -> bool:
    # An id with NUL can never have been stored on PostgreSQL, and psycopg refuses to send it.
    return "\x00" not in value


# Built once: with the response's subquery, building the statement and its cache key cost
# more than running it (bench/README.md, "The delivery log keyed by row_key and the response
# stored once: before and after").
_PREDICTION_BY_ID = sa.select(*PREDICTION_READ).where(
    PREDICTION.c.id == sa.bindparam("prediction_id", type_=PREDICTION.c.id.type)
)


def prediction_row(connection: Connection, prediction_id: str) -> RowMapping | None:
    """The stored prediction row, or None."""
    return (
        connection.execute(_PREDICTION_BY_ID, {"prediction_id": prediction_id}).mappings().first()
    )


def get_prediction(engine: Engine, prediction_id: str) -> PredictionBody | None:
    if not _storable(prediction_id):
        return None
    with engine.connect() as connection:
        row = prediction_row(connection, prediction_id)
    return None if row is None else public_prediction(row)


def list_predictions(
    engine: Engine,
    filters: PredictionFilters,
    after: PredictionKey | None,
    limit: int,
    *,
    skip: int = 0,
) -> tuple[list[PredictionBody], PredictionKey | None]:
    """One page, newest first; the key of its last row when another page follows.

    `skip` drops that many rows after the `after` position (or after the newest row when
    there is none): the API's offset paging composed with our keyset cursor.
    """
    table = PREDICTION
    query = sa.select(*PREDICTION_READ)
    if filters.status is not None:
        query = query.where(table.c.status == filters.status.value)
    if filters.domain is not None:
        query = query.where(table.c.domain == filters.domain)
    if filters.submission_id is not None:
        query = query.where(table.c.submission_id == filters.submission_id)
    if filters.created_after is not None:
        query = query.where(table.c.created_at >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(table.c.created_at < filters.created_before)
    if after is not None:
        # Both keys are immutable after insert, so a position never moves under a reader.
        query = query.where(
            sa.tuple_(table.c.created_at, table.c.id)
            < sa.tuple_(
                sa.bindparam(None, after.created_at, type_=table.c.created_at.type),
                sa.bindparam(None, after.id, type_=table.c.id.type),
            )
        )
    query = query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit + 1)
    if skip:
        query = query.offset(skip)
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    page = rows[:limit]
    next_key = None
    if len(rows) > limit:
        last = page[-1]
        next_key = PredictionKey(as_utc(last["created_at"]), last["id"])
    return [public_prediction(row) for row in page], next_key


def public_delivery(row: RowMapping, *, include_body: bool) -> Delivery:
    """A Delivery row for audits; the raw body only on request (it may be large).

    A listing that must not load bodies selects `length(body)` as `body_size` instead.
    """
    body: bytes | None = row.get("body")
    size = row["body_size"] if "body_size" in row else (None if body is None else len(body))
    result: Delivery = {
        "id": row["id"],
        "prediction_id": row["prediction_id"],
        "submission_id": row["submission_id"],
        "received_at": iso_utc(row["received_at"]),
        "verdict": row["verdict"],
        "reason": row["reason"],
        "http_status": row["http_status"],
        "source": row["source"],
        "body_sha256": row["body_sha256"],
        "headers": row["headers"],
        "body_size": size,
        "body_truncated": row["body_truncated"],
    }
    if include_body:
        result["body"], result["body_encoding"] = _encode_body(body)
    return result


def _encode_body(body: bytes | None) -> tuple[str | None, BodyEncoding | None]:
    if body is None:
        return None, None
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def list_deliveries(
    engine: Engine,
    *,
    prediction_id: str | None,
    submission_id: str | None,
    after: DeliveryKey | None,
    limit: int,
    include_body: bool,
) -> tuple[list[Delivery], DeliveryKey | None]:
    """One page of deliveries, newest first by their (insert-ordered) id."""
    table = DELIVERY
    query = sa.select(table)
    if prediction_id is not None:
        query = query.where(deliveries_of_prediction(prediction_id))
    if submission_id is not None:
        query = query.where(table.c.submission_id == submission_id)
    if after is not None:
        query = query.where(table.c.id < after.id)
    query = query.order_by(table.c.id.desc()).limit(limit + 1)
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    page = rows[:limit]
    next_key = DeliveryKey(page[-1]["id"]) if len(rows) > limit else None
    return [public_delivery(row, include_body=include_body) for row in page], next_key


def _redact_callback_url(url: str | None) -> str | None:
    # The token in a callback URL is a credential for posting callbacks; readers need
    # to see where callbacks go, not be able to forge one.
    if url is None or CALLBACK_PATH_PREFIX not in url:
        return url
    return url[: url.index(CALLBACK_PATH_PREFIX) + len(CALLBACK_PATH_PREFIX)] + REDACTED


def get_submission(engine: Engine, submission_id: str) -> Submission | None:
    """The submission, its prediction (or null) and its most recent deliveries, oldest first."""
    if not _storable(submission_id):
        return None
    with engine.connect() as connection:
        row = (
            connection.execute(sa.select(SUBMISSION).where(SUBMISSION.c.id == submission_id))
            .mappings()
            .first()
        )
        if row is None:
            return None
        # The callback may have linked a prediction before the submission learned its id.
        link = (
            PREDICTION.c.id == row["prediction_id"]
            if row["prediction_id"] is not None
            else PREDICTION.c.submission_id == submission_id
        )
        prediction = (
            connection.execute(
                sa.select(*PREDICTION_READ).where(link).order_by(PREDICTION.c.created_at).limit(1)
            )
            .mappings()
            .first()
        )
        deliveries = (
            connection.execute(
                sa.select(DELIVERY)
                .where(DELIVERY.c.submission_id == submission_id)
                .order_by(DELIVERY.c.id.desc())
                .limit(SUBMISSION_DELIVERY_HISTORY)
            )
            .mappings()
            .all()
        )
    submission: Submission = {
        "id": row["id"],
        "request_id": row["request_id"],
        "domain": row["domain"],
        "prompt": row["prompt"],
        "json_schema": row["json_schema"],
        "callback_url": _redact_callback_url(row["callback_url"]),
        "batch": row["batch"],
        "image_count": row["image_count"],
        "prediction_id": row["prediction_id"],
        "status": row["status"],
        "error": row["error"],
        "created_at": iso_utc(row["created_at"]),
        "sent_at": iso_utc(row["sent_at"]),
        "updated_at": iso_utc(row["updated_at"]),
        "prediction": None if prediction is None else public_prediction(prediction),
        "deliveries": [
            public_delivery(delivery, include_body=False) for delivery in reversed(deliveries)
        ],
    }
    return submission


def events_after(engine: Engine, seq: int, limit: int) -> list[StoredEvent]:
    """The change feed after `seq`, in seq order (= commit order, see vlmhooks/store/batch.py)."""
    rows = event_rows_after(engine, seq, limit, EVENT.c.data)
    return [StoredEvent(row.seq, row.type, row.data) for row in rows]


def event_rows_after(
    engine: Engine, seq: int, limit: int, *columns: sa.ColumnElement[Any]
) -> Sequence[sa.Row[Any]]:
    """Up to `limit` change-feed rows after `seq` in seq order: seq, type and `columns`."""
    with engine.connect() as connection:
        return connection.execute(
            sa.select(EVENT.c.seq, EVENT.c.type, *columns)
            .where(EVENT.c.seq > seq)
            .order_by(EVENT.c.seq)
            .limit(limit)
        ).all()


def last_event_seq(engine: Engine) -> int:
    with engine.connect() as connection:
        value = connection.execute(sa.select(sa.func.max(EVENT.c.seq))).scalar()
    return int(value or 0)


def count_predictions_by_status(engine: Engine) -> dict[str, int]:
    """Every status, zero included, so a dashboard's series never vanish."""
    counts = dict.fromkeys((status.value for status in Status), 0)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(PREDICTION.c.status, sa.func.count()).group_by(PREDICTION.c.status)
        ).all()
    for status, count in rows:
        counts[status] = int(count)
    return counts

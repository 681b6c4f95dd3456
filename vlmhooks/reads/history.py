"""One prediction's history for the detail page: status timeline, submission, every delivery.

Raw bodies are read one at a time (`delivery_body`), only when an operator asks for one.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from vlmhooks.public import iso_utc, public_prediction
from vlmhooks.reads.queries import get_submission, prediction_row, public_delivery
from vlmhooks.store.tables import DELIVERY, EVENT, deliveries_of_prediction, events_of_prediction

__all__ = ["DELIVERY_HISTORY_LIMIT", "delivery_body", "failure_reason", "prediction_history"]

DELIVERY_HISTORY_LIMIT = 100
TIMELINE_LIMIT = 100
EVENT_PREFIX = "prediction."


def _timeline(connection: Connection, prediction_id: str) -> list[dict[str, Any]]:
    rows = connection.execute(
        sa.select(EVENT.c.seq, EVENT.c.type, EVENT.c.created_at)
        .where(events_of_prediction(prediction_id))
        .order_by(EVENT.c.seq)
        .limit(TIMELINE_LIMIT)
    ).all()
    return [
        {
            "seq": row.seq,
            "status": row.type.removeprefix(EVENT_PREFIX),
            "at": iso_utc(row.created_at),
        }
        for row in rows
    ]


def _delivery(row: RowMapping) -> dict[str, Any]:
    return dict(public_delivery(row, include_body=False))


def _deliveries(
    connection: Connection, prediction_id: str, submission_id: str | None
) -> list[dict[str, Any]]:
    """Deliveries of this prediction, and its submission's refusals that named no id
    (a bad signature is refused before the body is read), newest first."""
    belongs = deliveries_of_prediction(prediction_id)
    if submission_id is not None:
        belongs = sa.or_(
            belongs,
            sa.and_(DELIVERY.c.submission_id == submission_id, DELIVERY.c.prediction_id.is_(None)),
        )
    columns = [column for column in DELIVERY.c if column.name != "body"]
    # The size, not the body: a history of 100 deliveries must not read 100 capped bodies.
    size = sa.func.length(DELIVERY.c.body).label("body_size")
    rows = connection.execute(
        sa.select(*columns, size)
        .where(belongs)
        .order_by(DELIVERY.c.id.desc())
        .limit(DELIVERY_HISTORY_LIMIT)
    ).mappings()
    return [_delivery(row) for row in rows]


def prediction_history(engine: Engine, prediction_id: str) -> dict[str, Any] | None:
    """The prediction in the API's shape, its failure reason, timeline, submission and
    deliveries. A prediction that was never stored but was named by refused deliveries
    (a 409, a 422) gets its history with `prediction: null`; None when nothing names it."""
    if "\x00" in prediction_id:  # PostgreSQL text cannot hold NUL: never stored
        return None
    with engine.connect() as connection:
        row = prediction_row(connection, prediction_id)
        submission_id = None if row is None else row["submission_id"]
        deliveries = _deliveries(connection, prediction_id, submission_id)
        if row is None and not deliveries:
            return None
        timeline = _timeline(connection, prediction_id) if row is not None else []
    if submission_id is None and deliveries:
        submission_id = deliveries[0]["submission_id"]
    submission: dict[str, Any] | None = None
    if submission_id is not None:
        found = get_submission(engine, submission_id)
        if found is not None:
            # Its prediction is this page and its deliveries are listed above.
            submission = {
                key: value
                for key, value in found.items()
                if key not in ("prediction", "deliveries")
            }
    prediction = None if row is None else public_prediction(row)
    return {
        "prediction": prediction,
        "failure": None if prediction is None else failure_reason(prediction, submission),
        "timeline": timeline,
        "submission": submission,
        "deliveries": deliveries,
        "deliveries_limit": DELIVERY_HISTORY_LIMIT,
    }


def delivery_body(engine: Engine, delivery_id: int) -> dict[str, Any] | None:
    """One delivery with its stored (capped) raw body: UTF-8 text, else base64."""
    with engine.connect() as connection:
        row = (
            connection.execute(sa.select(DELIVERY).where(DELIVERY.c.id == delivery_id))
            .mappings()
            .first()
        )
    return None if row is None else dict(public_delivery(row, include_body=True))


def failure_reason(
    prediction: dict[str, Any], submission: dict[str, Any] | None = None
) -> str | None:
    """Why a failed prediction failed, from wherever the API (or our submitter) put it.

    The contract has no error field: the API and the sandbox send `response: {"error": ...}`,
    other senders a top-level `error` or `message`, and a request the API refused leaves its
    error on our submission.
    """
    if prediction.get("status") != "failed":
        return None
    response = prediction.get("response")
    candidates: list[Any] = [response]
    if isinstance(response, dict):
        candidates = [response.get("error"), response.get("message"), response.get("detail")]
    candidates += [prediction.get("error"), prediction.get("message")]
    if submission is not None:
        candidates.append(submission.get("error"))
    for candidate in candidates:
        if isinstance(candidate, dict):
            candidate = candidate.get("message") or candidate.get("detail")
        if isinstance(candidate, str) and candidate.strip():
            return candidate
    return "the API reported this prediction as failed without saying why"

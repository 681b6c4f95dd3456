"""What the operations overview reads: counts, callbacks per minute, refusals, the newest
predictions, and the positions a live stream resumes from.

Every query is bounded: refusals and per-minute counts walk the delivery table backwards by
its primary key (insert order) instead of scanning it, since `received_at` has no index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from schemas.enums import Status
from vlmhooks.public import iso_utc, public_prediction
from vlmhooks.reads.buckets import bucket_start, utc_bucket
from vlmhooks.reads.queries import event_rows_after
from vlmhooks.store.tables import DELIVERY, EVENT, PREDICTION, PREDICTION_READ

__all__ = [
    "DeliveryMark",
    "EventMark",
    "OverviewFilters",
    "Positions",
    "callbacks_per_minute",
    "count_by_domain",
    "current_positions",
    "event_marks_after",
    "latest_predictions",
    "latest_refusals",
    "refusals_after",
]

REJECTED = "rejected"
# A delivery's received_at is taken before its body is read, so rows commit slightly out of
# time order; walking back this much further than asked never misses one.
RECEIVED_AT_SLACK = timedelta(minutes=5)
# Refusals are looked for among this many most recent deliveries: a refusal older than that
# is history for GET /v1/deliveries, not news for an overview.
REFUSAL_SCAN_WINDOW = 200_000


@dataclass(frozen=True)
class Positions:
    """High-water marks read before a snapshot: a stream from here misses nothing after it."""

    event_seq: int
    delivery_id: int


@dataclass(frozen=True)
class OverviewFilters:
    status: Status | None = None
    domain: str | None = None
    search: str | None = None  # a prefix of the prediction id or of the submission id


@dataclass(frozen=True)
class EventMark:
    """A stored change, without its (possibly large) prediction body."""

    seq: int
    type: str
    prediction_id: str


@dataclass(frozen=True)
class DeliveryMark:
    id: int
    summary: dict[str, Any]


def current_positions(connection: Connection) -> Positions:
    seq = connection.execute(sa.select(sa.func.max(EVENT.c.seq))).scalar()
    delivery_id = connection.execute(sa.select(sa.func.max(DELIVERY.c.id))).scalar()
    return Positions(int(seq or 0), int(delivery_id or 0))


def count_by_domain(connection: Connection) -> list[tuple[str | None, int]]:
    """Predictions per domain, largest first (None: the API named no domain)."""
    total = sa.func.count().label("total")
    rows = connection.execute(
        sa.select(PREDICTION.c.domain, total)
        .group_by(PREDICTION.c.domain)
        .order_by(total.desc(), PREDICTION.c.domain)
    ).all()
    return [(row.domain, int(row.total)) for row in rows]


def _first_delivery_after(moment: datetime) -> Any:
    """The id below which every delivery is older than `moment` (0 when none is)."""
    older = (
        sa.select(DELIVERY.c.id)
        .where(DELIVERY.c.received_at < moment - RECEIVED_AT_SLACK)
        .order_by(DELIVERY.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return sa.func.coalesce(older, 0)


def callbacks_per_minute(
    connection: Connection, now: datetime, minutes: int = 60
) -> list[dict[str, Any]]:
    """Logged deliveries per UTC minute, oldest first, every minute present (zeros included).

    Requests refused before the token check are never logged, so they are not counted.
    """
    end = now.replace(second=0, microsecond=0)
    start = end - timedelta(minutes=minutes - 1)
    dialect_name = connection.dialect.name
    minute = utc_bucket(DELIVERY.c.received_at, dialect_name, "minute").label("minute")
    refused = sa.func.sum(sa.case((DELIVERY.c.verdict == REJECTED, 1), else_=0)).label("refused")
    rows = connection.execute(
        sa.select(minute, sa.func.count().label("total"), refused)
        .where(DELIVERY.c.id > _first_delivery_after(start), DELIVERY.c.received_at >= start)
        .group_by(minute)
    ).all()
    counted = {row.minute: (int(row.total), int(row.refused or 0)) for row in rows}
    series = []
    for index in range(minutes):
        moment = start + timedelta(minutes=index)
        total, refused_count = counted.get(bucket_start(moment, "minute"), (0, 0))
        series.append(
            {
                "minute": moment.strftime("%Y-%m-%dT%H:%MZ"),
                "accepted": total - refused_count,
                "refused": refused_count,
            }
        )
    return series


def latest_predictions(
    connection: Connection, filters: OverviewFilters, limit: int
) -> list[dict[str, Any]]:
    query = sa.select(*PREDICTION_READ)
    if filters.status is not None:
        query = query.where(PREDICTION.c.status == filters.status.value)
    if filters.domain is not None:
        query = query.where(PREDICTION.c.domain == filters.domain)
    if filters.search:
        # substr, not LIKE: no wildcard to escape, and case-sensitive on both databases.
        length = len(filters.search)
        query = query.where(
            sa.or_(
                sa.func.substr(PREDICTION.c.id, 1, length) == filters.search,
                sa.func.substr(PREDICTION.c.submission_id, 1, length) == filters.search,
            )
        )
    query = query.order_by(PREDICTION.c.created_at.desc(), PREDICTION.c.id.desc()).limit(limit)
    return [public_prediction(row) for row in connection.execute(query).mappings()]


def _refusal_columns() -> list[Any]:
    # The body stays in the database: an overview row needs the reason, not the payload.
    columns = ("id", "prediction_id", "submission_id", "received_at", "reason", "http_status")
    return [DELIVERY.c[name] for name in (*columns, "source")]


def _refusal(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "prediction_id": row["prediction_id"],
        "submission_id": row["submission_id"],
        "received_at": iso_utc(row["received_at"]),
        "reason": row["reason"],
        "http_status": row["http_status"],
        "source": row["source"],
    }


def latest_refusals(connection: Connection, limit: int) -> list[dict[str, Any]]:
    """The newest refused deliveries, newest first, with their reasons."""
    newest = sa.select(sa.func.coalesce(sa.func.max(DELIVERY.c.id), 0)).scalar_subquery()
    rows = connection.execute(
        sa.select(*_refusal_columns())
        .where(DELIVERY.c.verdict == REJECTED, DELIVERY.c.id > newest - REFUSAL_SCAN_WINDOW)
        .order_by(DELIVERY.c.id.desc())
        .limit(limit)
    ).mappings()
    return [_refusal(row) for row in rows]


def refusals_after(engine: Engine, delivery_id: int, limit: int) -> list[DeliveryMark]:
    """Refused deliveries logged after `delivery_id`, oldest first (for a live stream)."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(*_refusal_columns())
            .where(DELIVERY.c.id > delivery_id, DELIVERY.c.verdict == REJECTED)
            .order_by(DELIVERY.c.id)
            .limit(limit)
        ).mappings()
        return [DeliveryMark(int(row["id"]), _refusal(row)) for row in rows]


def event_marks_after(engine: Engine, seq: int, limit: int) -> list[EventMark]:
    """The change feed after `seq` in commit order, without the prediction bodies."""
    rows = event_rows_after(engine, seq, limit, EVENT.c.prediction_id)
    return [EventMark(row.seq, row.type, row.prediction_id) for row in rows]

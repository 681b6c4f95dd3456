"""The usage ledger: `credits_used` and `elements_processed` summed from stored predictions.

Times are the prediction's `created_at` (the API's own clock, immutable once stored), so a
window always holds the same predictions however often their status changes afterwards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

from vlmhooks.reads.buckets import json_integer, sum_integer, utc_bucket
from vlmhooks.store.tables import PREDICTION

__all__ = [
    "DEFAULT_USAGE_GROUPS",
    "MAX_USAGE_GROUPS",
    "UsageGroupBy",
    "UsageLedger",
    "UsageRow",
    "UsageTotals",
    "credits_by_domain",
    "usage_ledger",
]

DEFAULT_USAGE_GROUPS = 1000
MAX_USAGE_GROUPS = 10_000

UsageGroupBy = Literal["domain", "day", "submission"]


class UsageTotals(BaseModel):
    """Sums over every stored prediction in the window."""

    model_config = ConfigDict(frozen=True)

    predictions: int = Field(description="Predictions created in the window.")
    credits_used: int = Field(description="Sum of usage.credits_used (missing counts as 0).")
    elements_processed: int = Field(description="Sum of usage.elements_processed.")


class UsageRow(BaseModel):
    """One group: its key first, then the same sums as the totals."""

    model_config = ConfigDict(frozen=True)

    key: str | None = Field(
        description="The domain, the UTC day (YYYY-MM-DD) or the submission id; "
        "null for predictions that carry none."
    )
    predictions: int
    credits_used: int
    elements_processed: int


class UsageLedger(BaseModel):
    """`GET /v1/usage`: one row per group, ordered by key, and the window's totals."""

    model_config = ConfigDict(frozen=True)

    group_by: UsageGroupBy
    since: datetime | None = Field(description="created_at >= since (inclusive).")
    until: datetime | None = Field(description="created_at < until (exclusive).")
    data: list[UsageRow]
    total: UsageTotals
    truncated: bool = Field(description="More groups exist than `limit`; totals still count all.")


def _group_key(group_by: UsageGroupBy, dialect_name: str) -> Any:
    if group_by == "domain":
        return PREDICTION.c.domain
    if group_by == "submission":
        return PREDICTION.c.submission_id
    return utc_bucket(PREDICTION.c.created_at, dialect_name, "day")


def _window(query: Any, since: datetime | None, until: datetime | None) -> Any:
    if since is not None:
        query = query.where(PREDICTION.c.created_at >= since)
    if until is not None:
        query = query.where(PREDICTION.c.created_at < until)
    return query


def _sums(dialect_name: str) -> list[Any]:
    return [
        sa.func.count().label("predictions"),
        sum_integer(json_integer(PREDICTION.c.usage, "credits_used"), dialect_name).label(
            "credits_used"
        ),
        sum_integer(json_integer(PREDICTION.c.usage, "elements_processed"), dialect_name).label(
            "elements_processed"
        ),
    ]


def _totals(row: Any) -> dict[str, int]:
    # PostgreSQL sums BIGINT as NUMERIC (Decimal), SQLite's total() as REAL: both are whole.
    return {
        "predictions": int(row.predictions or 0),
        "credits_used": int(row.credits_used or 0),
        "elements_processed": int(row.elements_processed or 0),
    }


def usage_ledger(
    engine: Engine,
    group_by: UsageGroupBy,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = DEFAULT_USAGE_GROUPS,
) -> UsageLedger:
    dialect_name = engine.dialect.name
    key = _group_key(group_by, dialect_name).label("key")
    grouped = _window(sa.select(key, *_sums(dialect_name)), since, until)
    # NULL keys sort last on both databases only when asked to.
    grouped = grouped.group_by(key).order_by(key.asc().nulls_last()).limit(limit + 1)
    total_query = _window(sa.select(*_sums(dialect_name)), since, until)
    with engine.connect() as connection:
        rows = connection.execute(grouped).all()
        total = connection.execute(total_query).one()
    return UsageLedger(
        group_by=group_by,
        since=since,
        until=until,
        data=[UsageRow(key=row.key, **_totals(row)) for row in rows[:limit]],
        total=UsageTotals(**_totals(total)),
        truncated=len(rows) > limit,
    )


def credits_by_domain(engine: Engine, *, since: datetime | None = None) -> dict[str | None, int]:
    """Credits used per domain (None: predictions without one), all time or since a moment."""
    ledger = usage_ledger(engine, "domain", since=since, limit=MAX_USAGE_GROUPS)
    return {row.key: row.credits_used for row in ledger.data}

"""Submissions still waiting for their first callback past the time one was due: the count
behind the `vlmhooks_callbacks_overdue` gauge."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vlmhooks.store.tables import PREDICTION, SUBMISSION

__all__ = ["count_overdue_submissions"]


def count_overdue_submissions(
    engine: Engine, now: datetime, *, overdue_after: timedelta, horizon: timedelta
) -> int:
    """Sent with a callback URL, accepted, older than `overdue_after`, and no prediction stored
    through it yet. Only those younger than `horizon` (the token's lifetime): past it the
    callback can no longer arrive, and the gauge must fall back rather than grow forever."""
    answered = sa.exists().where(PREDICTION.c.submission_id == SUBMISSION.c.id)
    query = (
        sa.select(sa.func.count())
        .select_from(SUBMISSION)
        .where(
            SUBMISSION.c.callback_url.is_not(None),
            SUBMISSION.c.sent_at.is_not(None),
            SUBMISSION.c.error.is_(None),
            SUBMISSION.c.created_at < now - overdue_after,
            SUBMISSION.c.created_at >= now - horizon,
            ~answered,
        )
    )
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())

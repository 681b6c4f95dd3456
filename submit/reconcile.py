"""Heal missed callbacks: poll the API for submissions whose prediction is not stored as done.

The API delivers a callback at most twice; a receiver outage longer than that would lose
the result. Reconcile finds those submissions and stores what the API holds, marked
``source="poll"``, through the receiver's own ingest code.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from schemas.contract import utc_now
from schemas.enums import TERMINAL_STATUSES, Status
from submit.client import VlmRunClient
from submit.errors import ApiError, AuthenticationError
from vlmhooks.errors import VlmhooksError
from vlmhooks.store.ingest_one import ingest_prediction
from vlmhooks.store.tables import PREDICTION, SUBMISSION

__all__ = [
    "DEFAULT_OLDER_THAN",
    "ReconcileSummary",
    "find_unsettled",
    "parse_duration",
    "reconcile_forever",
    "reconcile_once",
]

DEFAULT_OLDER_THAN = timedelta(minutes=10)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
logger = logging.getLogger("vlmhooks.submit.reconcile")


def parse_duration(text: str) -> timedelta:
    """``30s``, ``10m``, ``2h``, ``1d`` or bare seconds; else ``ValueError`` naming the input."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 10m, 2h)")
    number, unit = match.groups()
    return timedelta(seconds=float(number) * _UNIT_SECONDS[unit.lower()])


@dataclass
class ReconcileSummary:
    """One pass: how many were checked, healed (now terminal), still pending, or failed."""

    checked: int = 0
    healed: int = 0
    pending: int = 0
    errors: int = 0
    error_messages: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"checked {self.checked}, healed {self.healed}, "
            f"still pending {self.pending}, errors {self.errors}"
        )


def find_unsettled(
    engine: Engine, *, older_than: timedelta, now: datetime | None = None, limit: int | None = None
) -> list[tuple[str, str]]:
    """``(submission_id, prediction_id)`` of sent submissions, older than ``older_than``,
    whose prediction row is missing or not terminal; oldest first."""
    cutoff = (now or utc_now()) - older_than
    terminal = [status.value for status in TERMINAL_STATUSES]
    query = (
        sa.select(SUBMISSION.c.id, SUBMISSION.c.prediction_id)
        .select_from(
            SUBMISSION.outerjoin(PREDICTION, PREDICTION.c.id == SUBMISSION.c.prediction_id)
        )
        .where(
            SUBMISSION.c.prediction_id.is_not(None),
            SUBMISSION.c.created_at <= cutoff,
            sa.or_(PREDICTION.c.id.is_(None), PREDICTION.c.status.not_in(terminal)),
        )
        .order_by(SUBMISSION.c.created_at, SUBMISSION.c.id)
        .limit(limit)
    )
    with engine.connect() as connection:
        return [(row.id, row.prediction_id) for row in connection.execute(query)]


def reconcile_once(
    engine: Engine,
    client: VlmRunClient,
    *,
    older_than: timedelta = DEFAULT_OLDER_THAN,
    now: datetime | None = None,
    limit: int | None = None,
) -> ReconcileSummary:
    """One pass over the unsettled submissions; ``AuthenticationError`` aborts it."""
    summary = ReconcileSummary()
    for submission_id, prediction_id in find_unsettled(
        engine, older_than=older_than, now=now, limit=limit
    ):
        summary.checked += 1
        try:
            prediction = client.get_prediction(prediction_id)
            outcome = ingest_prediction(
                engine, prediction, submission_id=submission_id, source="poll"
            )
        except AuthenticationError:
            raise
        except (ApiError, VlmhooksError) as exc:
            # One bad prediction (404, contract violation) must not stop the pass.
            summary.errors += 1
            summary.error_messages.append(f"{prediction_id}: {exc}")
            logger.warning("reconcile %s (%s): %s", prediction_id, submission_id, exc)
            continue
        if Status(outcome.status).is_terminal:
            summary.healed += 1
        else:
            summary.pending += 1
    return summary


def reconcile_forever(
    engine: Engine,
    client: VlmRunClient,
    *,
    every: float,
    older_than: timedelta = DEFAULT_OLDER_THAN,
    on_pass: Callable[[ReconcileSummary], None] = lambda _summary: None,
    sleep: Callable[[float], None] = time.sleep,
    passes: int | None = None,
) -> None:
    """Run a pass every ``every`` seconds until interrupted (or ``passes`` have run, for tests)."""
    done = 0
    while passes is None or done < passes:
        started = time.monotonic()
        on_pass(reconcile_once(engine, client, older_than=older_than))
        done += 1
        if passes is None or done < passes:
            # `every` is the period, not the gap: a slow pass does not push the schedule back.
            sleep(max(0.0, every - (time.monotonic() - started)))

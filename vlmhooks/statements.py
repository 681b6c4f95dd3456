"""The statements of the write path, built once per dialect and shared by every writer.

Building a Core statement (and its cache key) per call cost more than executing it; these
are immutable, so the writer threads share them and pass only parameters.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from schemas.enums import STATUS_RANK, Status
from vlmhooks.raw_sql import RawInsert
from vlmhooks.tables import DELIVERY, EVENT, PREDICTION, SUBMISSION, WEBHOOK_MESSAGE

__all__ = ["EVENTS_CHANNEL", "EVENT_FEED_LOCK_KEY", "WriteStatements", "write_statements"]

EVENTS_CHANNEL = "vlmhooks_events"
# One key for the whole event feed: holding it until commit makes `seq` order = commit
# order across processes, so an SSE reader resuming "after seq N" never misses a row.
EVENT_FEED_LOCK_KEY = 0x766C6D686F6F6B73
_TERMINAL_RANK = STATUS_RANK[Status.COMPLETED]
_PREDICTION_COLUMNS = (
    "id", "submission_id", "domain", "status", "status_rank", "response", "usage", "extra",
    "created_at", "completed_at", "received_at", "updated_at", "delivery_count", "source",
    "body_sha256", "schema_valid", "schema_errors",
)  # fmt: skip
_REPLACED_ON_UPDATE = (
    "status", "status_rank", "response", "usage", "extra", "completed_at", "updated_at",
    "source", "body_sha256", "schema_valid", "schema_errors",
)  # fmt: skip
# The same rule as `upsert_prediction` (the Core form, which states it more readably and
# which code outside the batch may use), in plain SQL that PostgreSQL and SQLite (3.35+)
# both take: forward only, the database decides.
_UPSERT_SUFFIX = (
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _REPLACED_ON_UPDATE)
    + ", delivery_count = prediction.delivery_count + 1"
    ", submission_id = coalesce(prediction.submission_id, excluded.submission_id)"
    ", domain = coalesce(excluded.domain, prediction.domain)"
    " WHERE excluded.status_rank > prediction.status_rank"
    " OR (excluded.status_rank = prediction.status_rank"
    f" AND prediction.status_rank < {_TERMINAL_RANK}"
    " AND excluded.body_sha256 != prediction.body_sha256)"
    " RETURNING id, delivery_count, received_at"
)
_DELIVERY_COLUMNS = (
    "prediction_id", "submission_id", "received_at", "verdict", "reason", "http_status",
    "source", "body_sha256", "headers", "body", "body_truncated",
)  # fmt: skip


class WriteStatements:
    """Every statement of the write path, for one dialect."""

    def __init__(self, dialect_name: str) -> None:
        insert: Any = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
        self.is_postgresql = dialect_name == "postgresql"
        self.advisory_lock = sa.select(sa.func.pg_advisory_xact_lock(EVENT_FEED_LOCK_KEY))
        self.notify = sa.select(sa.func.pg_notify(EVENTS_CHANNEL, ""))
        # A batch's context in one round trip: its submission rows, and who owns what (the
        # submission that first stored each prediction, the prediction each URL stored).
        self.batch_context = sa.union_all(
            sa.select(
                sa.literal("submission").label("kind"),
                SUBMISSION.c.id,
                SUBMISSION.c.prediction_id.label("link"),
                SUBMISSION.c.domain,
                SUBMISSION.c.json_schema,
            ).where(SUBMISSION.c.id.in_(sa.bindparam("submission_ids", expanding=True))),
            sa.select(
                sa.literal("prediction"),
                PREDICTION.c.id,
                PREDICTION.c.submission_id,
                sa.null(),
                sa.null(),
            ).where(
                sa.or_(
                    PREDICTION.c.id.in_(sa.bindparam("prediction_ids", expanding=True)),
                    PREDICTION.c.submission_id.in_(sa.bindparam("owner_ids", expanding=True)),
                )
            ),
        )
        self.claim_prediction = (
            PREDICTION.update()
            .where(
                PREDICTION.c.id == sa.bindparam("claimed_id"),
                PREDICTION.c.submission_id.is_(None),
            )
            .values(submission_id=sa.bindparam("claimant_id"))
        )
        self.known_webhooks = sa.select(
            WEBHOOK_MESSAGE.c.id, WEBHOOK_MESSAGE.c.prediction_id, WEBHOOK_MESSAGE.c.body_sha256
        ).where(WEBHOOK_MESSAGE.c.id.in_(sa.bindparam("ids", expanding=True)))
        self.remember_webhook = (
            insert(WEBHOOK_MESSAGE)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(WEBHOOK_MESSAGE.c.id)
        )
        self.currents = sa.select(
            PREDICTION.c.id, PREDICTION.c.status, PREDICTION.c.body_sha256
        ).where(PREDICTION.c.id.in_(sa.bindparam("prediction_ids", expanding=True)))
        upsert = insert(PREDICTION)
        excluded = upsert.excluded
        table = PREDICTION
        self.upsert_prediction = upsert.on_conflict_do_update(
            index_elements=["id"],
            set_={
                "status": excluded.status,
                "status_rank": excluded.status_rank,
                "response": excluded.response,
                "usage": excluded.usage,
                "extra": excluded.extra,
                "completed_at": excluded.completed_at,
                "updated_at": excluded.updated_at,
                "delivery_count": table.c.delivery_count + 1,
                "source": excluded.source,
                "body_sha256": excluded.body_sha256,
                "schema_valid": excluded.schema_valid,
                "schema_errors": excluded.schema_errors,
                "submission_id": sa.func.coalesce(table.c.submission_id, excluded.submission_id),
                "domain": sa.func.coalesce(excluded.domain, table.c.domain),
            },
            # Forward only: a higher rank wins; within a non-terminal rank (running <-> paused)
            # new content wins; a terminal row never changes again.
            where=sa.or_(
                excluded.status_rank > table.c.status_rank,
                sa.and_(
                    excluded.status_rank == table.c.status_rank,
                    table.c.status_rank < _TERMINAL_RANK,
                    excluded.body_sha256 != table.c.body_sha256,
                ),
            ),
        ).returning(table.c.id, table.c.delivery_count, table.c.received_at)
        self.insert_event = insert(EVENT).returning(EVENT.c.prediction_id, EVENT.c.seq)
        self.link_submission = (
            SUBMISSION.update()
            .where(SUBMISSION.c.id == sa.bindparam("submission_id"))
            .values(
                prediction_id=sa.func.coalesce(
                    SUBMISSION.c.prediction_id, sa.bindparam("linked_prediction_id")
                ),
                status=sa.bindparam("new_status"),
                updated_at=sa.bindparam("linked_at"),
            )
        )
        # RETURNING makes SQLAlchemy send many rows as one multi-VALUES statement
        # ("insertmanyvalues") instead of one DBAPI step per row.
        self.insert_delivery = DELIVERY.insert().returning(DELIVERY.c.id)
        # The batch's hot statements, straight to the DB-API (see vlmhooks/raw_sql.py).
        self.raw_upsert_prediction = RawInsert(
            PREDICTION, _PREDICTION_COLUMNS, dialect_name, _UPSERT_SUFFIX
        )
        self.raw_insert_event = RawInsert(
            EVENT,
            ("prediction_id", "type", "data", "created_at"),
            dialect_name,
            "RETURNING prediction_id, seq",
        )
        self.raw_insert_delivery = RawInsert(DELIVERY, _DELIVERY_COLUMNS, dialect_name)


_BY_DIALECT = {name: WriteStatements(name) for name in ("postgresql", "sqlite")}


def write_statements(connection: Connection) -> WriteStatements:
    """The statements for `connection`'s dialect."""
    return _BY_DIALECT[connection.dialect.name]

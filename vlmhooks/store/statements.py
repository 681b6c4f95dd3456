"""The statements of the write path, built once per dialect and shared by every writer.

Building a Core statement (and its cache key) per call cost more than executing it; these
are immutable, so the writer threads share them and pass only parameters.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from schemas.enums import STATUS_RANK, Status
from vlmhooks.store.raw_sql import Prepared, RawInsert, RawUpdate, placeholders
from vlmhooks.store.tables import DELIVERY, EVENT, PREDICTION, WEBHOOK_MESSAGE

__all__ = [
    "EVENTS_CHANNEL",
    "EVENT_FEED_LOCK_KEY",
    "WRITE_KEY_LOCK_CLASS",
    "WriteStatements",
    "statements_for",
    "write_statements",
]

EVENTS_CHANNEL = "vlmhooks_events"
# One key for the whole event feed: taken just before a transaction's first event insert
# and held until commit, it makes `seq` order = commit order across processes, so an SSE
# reader resuming "after seq N" never misses a row.
EVENT_FEED_LOCK_KEY = 0x766C6D686F6F6B73
# The two-key form's first key for the rows a batch writes (PostgreSQL keeps the one-key
# and two-key forms apart, so these never meet the feed's lock). ARCHITECTURE.md, "The
# write batch": every key lock of a transaction comes before its feed lock.
WRITE_KEY_LOCK_CLASS = 0x766C6D68
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
# Forward only, the database decides: a higher rank wins; within a non-terminal rank
# (running <-> paused) new content wins; a terminal row never changes again. Plain SQL that
# PostgreSQL and SQLite (3.35+) both take; `vlmhooks/store/batch.py` plans by the same rule.
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
        self.dialect_name = dialect_name
        self.is_postgresql = dialect_name == "postgresql"
        # Before a transaction's first event row, and its wake-up for other processes'
        # listeners (delivered by PostgreSQL at commit; repeats within one collapse).
        self.feed_lock = Prepared("SELECT pg_advisory_xact_lock($1)", (EVENT_FEED_LOCK_KEY,))
        self.notify = Prepared("SELECT pg_notify($1, '')", (EVENTS_CHANNEL,))
        self.known_webhooks = sa.select(
            WEBHOOK_MESSAGE.c.id, WEBHOOK_MESSAGE.c.prediction_id, WEBHOOK_MESSAGE.c.body_sha256
        ).where(WEBHOOK_MESSAGE.c.id.in_(sa.bindparam("ids", expanding=True)))
        self.remember_webhook = (
            insert(WEBHOOK_MESSAGE)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(WEBHOOK_MESSAGE.c.id)
        )
        # RETURNING makes SQLAlchemy send many rows as one multi-VALUES statement
        # ("insertmanyvalues") instead of one DBAPI step per row.
        self.insert_delivery = DELIVERY.insert().returning(DELIVERY.c.id)
        # The batch's hot statements, straight to the DB-API (see vlmhooks/store/raw_sql.py).
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
        self.raw_claim_prediction = RawUpdate(
            "UPDATE prediction SET submission_id = {mark} WHERE id = {mark}"
            " AND submission_id IS NULL",
            ("claimant_id", "claimed_id"),
            (),
            dialect_name,
        )
        self.raw_link_submission = RawUpdate(
            "UPDATE submission SET prediction_id = coalesce(prediction_id, {mark}),"
            " status = {mark}, updated_at = {mark} WHERE id = {mark}",
            ("linked_prediction_id", "new_status", "linked_at", "submission_id"),
            ("linked_at",),
            dialect_name,
        )

    def key_locks(self, keys: Iterable[str]) -> Prepared:
        """PostgreSQL: lock `keys` (`p:`, `s:` or `w:` and an id) until commit, in one
        order for every transaction (ascending lock key), so two batches never wait for
        each other in a cycle."""
        ordered = sorted({_lock_key(key) for key in keys})
        return Prepared(
            "SELECT pg_advisory_xact_lock($1, k) FROM unnest(CAST($2 AS int4[])) AS k",
            (WRITE_KEY_LOCK_CLASS, ordered),
        )

    def batch_context(self, submission_ids: list[str], prediction_ids: list[str]) -> Prepared:
        """A batch's context in one round trip: its submission rows (`s`), and the prediction
        rows (`p`) it names or that its submissions stored: who owns what, and their state."""
        # Numbered on PostgreSQL: the submission ids are bound twice, at the start and end.
        submissions, predictions = len(submission_ids), len(prediction_ids)
        in_submissions = placeholders(self.dialect_name, submissions)
        in_predictions = placeholders(self.dialect_name, predictions, submissions + 1)
        in_submissions_again = placeholders(
            self.dialect_name, submissions, submissions + predictions + 1
        )
        # Identifiers are ours; ids only ever travel as parameters.
        sql = (
            "SELECT 's', id, prediction_id, domain, json_schema,"  # noqa: S608
            " NULL, NULL, NULL, NULL, NULL"
            f" FROM submission WHERE id IN ({in_submissions})"
            " UNION ALL SELECT 'p', id, submission_id, domain, NULL,"
            " status, status_rank, body_sha256, delivery_count, received_at FROM prediction"
            f" WHERE id IN ({in_predictions}) OR submission_id IN ({in_submissions_again})"
        )
        return Prepared(sql, (*submission_ids, *prediction_ids, *submission_ids))


def _lock_key(key: str) -> int:
    # CRC-32 as a signed int4: the same number in every process (str hashes are salted).
    # Two keys sharing a number only wait for each other; they cannot deadlock.
    value = zlib.crc32(key.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


_BY_DIALECT = {name: WriteStatements(name) for name in ("postgresql", "sqlite")}


def write_statements(connection: Connection) -> WriteStatements:
    """The statements for `connection`'s dialect."""
    return _BY_DIALECT[connection.dialect.name]


def statements_for(dialect_name: str) -> WriteStatements:
    """The statements for a dialect, by name (`sqlite`, `postgresql`)."""
    return _BY_DIALECT[dialect_name]

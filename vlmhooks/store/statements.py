"""The statements of the write path, built once per dialect and shared by every writer.

Building a Core statement (and its cache key) per call cost more than executing it; these
are immutable, so the writer threads share them and pass only parameters.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from vlmhooks.store.forward_only import forward_only_sql
from vlmhooks.store.raw_sql import Prepared, RawInsert, RawUpdate, placeholders
from vlmhooks.store.tables import (
    DELIVERY,
    EVENT,
    PREDICTION,
    SUBMISSION,
    WEBHOOK_MESSAGE,
    column_names,
    prediction_key_of,
)

__all__ = [
    "DELIVERY_KEY_PARAM",
    "EVENTS_CHANNEL",
    "EVENT_FEED_LOCK_KEY",
    "WRITE_KEY_LOCK_CLASS",
    "ContextRow",
    "EventReturned",
    "UpsertReturned",
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
# Column names come from the table declarations (schemas/tables.py), never copied here;
# the prediction's row_key is the database's to assign, and its response is stored once,
# in the write's event (`PREDICTION_READ` in vlmhooks/store/tables.py): the column is left
# NULL, and an update clears a response an older row held inline.
_PREDICTION_COLUMNS = tuple(
    column.name
    for column in PREDICTION.c
    if column is not PREDICTION.c.row_key and column is not PREDICTION.c.response
)
# On conflict the first write's key and times are kept, and these merged; every other
# column takes the incoming value.
_KEPT_ON_UPDATE = column_names(PREDICTION, "id", "created_at", "received_at")
_MERGED_ON_UPDATE = {
    name: merge.format(row=PREDICTION.name, column=name)
    for name, merge in zip(
        column_names(PREDICTION, "delivery_count", "submission_id", "domain"),
        (
            "{row}.{column} + 1",
            "coalesce({row}.{column}, excluded.{column})",  # the first owner stays
            "coalesce(excluded.{column}, {row}.{column})",  # a known domain stays
        ),
        strict=True,
    )
}
_REPLACED_ON_UPDATE = tuple(
    name for name in _PREDICTION_COLUMNS if name not in (*_KEPT_ON_UPDATE, *_MERGED_ON_UPDATE)
)
# Forward only, the database decides (vlmhooks/store/forward_only.py, which the batch's plan
# follows too). Plain SQL that PostgreSQL and SQLite (3.35+) both take.
_UPSERT_SUFFIX = (
    f"ON CONFLICT ({PREDICTION.c.id.name}) DO UPDATE SET "
    + ", ".join(
        [f"{name} = excluded.{name}" for name in _REPLACED_ON_UPDATE]
        + [f"{name} = {merged}" for name, merged in _MERGED_ON_UPDATE.items()]
        + [f"{PREDICTION.c.response.name} = NULL"]
    )
    + f" WHERE {forward_only_sql(PREDICTION.name, 'excluded')}"
)
# The delivery log and event rows: every column but the generated key.
_DELIVERY_COLUMNS = tuple(column.name for column in DELIVERY.c if column is not DELIVERY.c.id)
_EVENT_COLUMNS = tuple(column.name for column in EVENT.c if column is not EVENT.c.seq)
# An event's prediction_key is its prediction's row_key, looked up by the event's prediction
# id in the statement itself: the batch's upsert, earlier in the same transaction, has
# assigned it to a new prediction, and the statements still go out together with nothing
# read between them.
PREDICTION_KEY_OF = (
    f"(SELECT {PREDICTION.c.row_key.name} FROM {PREDICTION.name}"  # noqa: S608 (our identifiers)
    f" WHERE {PREDICTION.c.id.name} = {{mark}})"
)
_EVENT_KEY = {EVENT.c.prediction_key.name: (EVENT.c.prediction_id.name, PREDICTION_KEY_OF)}
# A delivery's the same way, after the upsert too (the batch's tail): NULL when its
# prediction has no row, as for a refusal of a prediction never stored.
_DELIVERY_KEY = {DELIVERY.c.prediction_key.name: (DELIVERY.c.prediction_id.name, PREDICTION_KEY_OF)}
# The single-row audit insert's form of it, bound by its own name: SQLAlchemy reserves the
# column's name for the column's own value.
DELIVERY_KEY_PARAM = "key_of_prediction_id"


class UpsertReturned(NamedTuple):
    """What the upsert returns for each row it applied: the plan is checked against it."""

    id: str
    delivery_count: int
    received_at: Any  # a datetime, or SQLite's stored text (raw_sql.as_datetime)


class EventReturned(NamedTuple):
    """What an event insert returns: each event's place in the feed, and the key its
    prediction's row has (forwarding's outbox rows are keyed by it)."""

    prediction_id: str
    seq: int
    prediction_key: int


UPSERT_RETURNING = column_names(PREDICTION, *UpsertReturned._fields)
EVENT_RETURNING = column_names(EVENT, *EventReturned._fields)


class ContextRow(NamedTuple):
    """One row of `WriteStatements.batch_context`: a submission (`kind` "s") or a prediction
    ("p"); `link` is the submission's recorded prediction id, or the prediction's submission."""

    kind: str
    id: str
    link: str | None
    domain: str | None
    json_schema: Any  # a submission's; NULL on a prediction row
    # A prediction's state; NULL on a submission row.
    status: Any
    status_rank: Any
    body_sha256: Any
    delivery_count: Any
    received_at: Any


# Each branch of the context's UNION, field by field (in ContextRow's order): a column of
# its table, else NULL.
_SUBMISSION_CONTEXT = {"link": "prediction_id", "domain": "domain", "json_schema": "json_schema"}
_PREDICTION_CONTEXT = {
    "link": "submission_id",
    **{name: name for name in ("domain", "status", "status_rank", "body_sha256")},
    **{name: name for name in ("delivery_count", "received_at")},
}


def _context_select(kind: str, table: sa.Table, columns: dict[str, str]) -> str:
    columns = {"id": table.c.id.name, **columns}
    fields = [f"'{kind}'"] + [
        table.c[columns[field]].name if field in columns else "NULL"
        for field in ContextRow._fields[1:]
    ]
    return f"SELECT {', '.join(fields)} FROM {table.name}"  # noqa: S608 (our identifiers)


_SUBMISSIONS_CONTEXT = _context_select("s", SUBMISSION, _SUBMISSION_CONTEXT)
_PREDICTIONS_CONTEXT = _context_select("p", PREDICTION, _PREDICTION_CONTEXT)


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
        self.insert_delivery = (
            DELIVERY.insert()
            .values(prediction_key=prediction_key_of(sa.bindparam(DELIVERY_KEY_PARAM)))
            .returning(DELIVERY.c.id)
        )
        # The batch's hot statements, straight to the DB-API (see vlmhooks/store/raw_sql.py).
        self.raw_upsert_prediction = RawInsert(
            PREDICTION, _PREDICTION_COLUMNS, dialect_name, _UPSERT_SUFFIX, UPSERT_RETURNING
        )
        self.raw_insert_event = RawInsert(
            EVENT,
            _EVENT_COLUMNS,
            dialect_name,
            returning=EVENT_RETURNING,
            derived=_EVENT_KEY,
        )
        self.raw_insert_delivery = RawInsert(
            DELIVERY, _DELIVERY_COLUMNS, dialect_name, derived=_DELIVERY_KEY
        )
        # Identifiers from our own table metadata; values only ever travel as parameters.
        p, s = PREDICTION.c, SUBMISSION.c
        self.raw_claim_prediction = RawUpdate(
            f"UPDATE {PREDICTION.name} SET {p.submission_id.name} = {{mark}}"  # noqa: S608
            f" WHERE {p.id.name} = {{mark}} AND {p.submission_id.name} IS NULL",
            ("claimant_id", "claimed_id"),
            (),
            dialect_name,
        )
        self.raw_link_submission = RawUpdate(
            f"UPDATE {SUBMISSION.name} SET {s.prediction_id.name}"  # noqa: S608
            f" = coalesce({s.prediction_id.name}, {{mark}}), {s.status.name} = {{mark}},"
            f" {s.updated_at.name} = {{mark}} WHERE {s.id.name} = {{mark}}",
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
            f"{_SUBMISSIONS_CONTEXT} WHERE {SUBMISSION.c.id.name} IN ({in_submissions})"
            f" UNION ALL {_PREDICTIONS_CONTEXT} WHERE {PREDICTION.c.id.name} IN ({in_predictions})"
            f" OR {PREDICTION.c.submission_id.name} IN ({in_submissions_again})"
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

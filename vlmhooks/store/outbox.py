"""The transactional outbox: one row per stored change per matching destination, written in
the change's own transaction, then claimed, acknowledged (deleted), retried or dead-lettered.

Why one row per change *per destination* (fan-out at write time) rather than one row per
change plus a cursor per destination: each row then carries its own retry state, a claim
is a plain `FOR UPDATE SKIP LOCKED` over pending rows, a slow or dead destination never
holds back another, and nothing depends on ids being allocated in commit order (a cursor
over a sequence can skip a row whose transaction commits late). The payload is not copied:
a row points at its change's `prediction_event` row, so a change costs one narrow row per
destination. The write path learns the destinations from the `forward_destination` table,
so every process that stores changes fans out alike, whatever its own configuration.
"""

from __future__ import annotations

import fnmatch
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from schemas.contract import as_utc, utc_now
from schemas.tables import ForwardDestination, ForwardOutbox
from vlmhooks.store.raw_sql import Prepared, as_json
from vlmhooks.store.tables import EVENT, column_names, table_of

__all__ = [
    "DEAD",
    "PENDING",
    "Claimed",
    "Filters",
    "Lease",
    "OutboxRoute",
    "Settlement",
    "claim",
    "has_due",
    "new_message_id",
    "outbox_routes",
    "settle",
    "with_payloads",
    "write_outbox_rows",
]

OUTBOX = table_of(ForwardOutbox)
DESTINATION = table_of(ForwardDestination)
PENDING, DEAD = "pending", "dead"
ERROR_WIDTH = 500
_INSERT = OUTBOX.insert()


@dataclass(frozen=True)
class Filters:
    """Which changes a destination wants; None means all."""

    events: tuple[str, ...] | None = None
    domain: str | None = None

    def matches(self, event_type: str, domain: str | None) -> bool:
        if self.events is not None and event_type not in self.events:
            return False
        if self.domain is not None:
            return domain is not None and fnmatch.fnmatchcase(domain, self.domain)
        return True


def new_message_id() -> str:
    """Random, not the event's seq: a rebuilt database restarts its sequences, and a
    consumer (or JetStream's duplicate window) would drop a reused id as a replay."""
    return f"msg_{uuid.uuid4().hex}"


OutboxRoute = tuple[str, Filters]


class _RouteRow(NamedTuple):
    id: str
    events: Any  # JSON: SQLite's text, or psycopg's list
    domain: str | None


# Read by every write batch, with its context (vlmhooks/store/batch.py), through the raw cursor.
OUTBOX_ROUTES = Prepared(
    f"SELECT {', '.join(column_names(DESTINATION, *_RouteRow._fields))}"  # noqa: S608 (ours)
    f" FROM {DESTINATION.name} WHERE {DESTINATION.c.active.name}",
    (),
)


def outbox_routes(rows: Sequence[tuple[Any, ...]]) -> list[OutboxRoute]:
    """The active destinations and their filters, from the rows `OUTBOX_ROUTES` read in the
    batch's transaction."""
    routes: list[OutboxRoute] = []
    for row in map(_RouteRow._make, rows):
        wanted = as_json(row.events)
        routes.append((row.id, Filters(tuple(wanted) if wanted else None, row.domain)))
    return routes


def write_outbox_rows(
    connection: Connection,
    events: Sequence[Mapping[str, Any]],
    seqs: Mapping[str, int],
    keys: Mapping[str, int],
    routes: Sequence[OutboxRoute],
) -> None:
    """The store's hook: `events` are the event rows just inserted, `seqs` their seq and
    `keys` their prediction's row_key by prediction id, `routes` from `outbox_routes` in
    the same transaction. Runs inside the change's transaction, so both commit or neither
    does."""
    rows: list[dict[str, Any]] = []
    for event in events:
        # The change's own time (the receiver's clock, a parameter), not a second reading:
        # the relay judges what is due with that same clock.
        now = event.get("created_at") or utc_now()
        prediction_id, event_type = event["prediction_id"], event["type"]
        domain = event["data"].get("domain")
        message_id = new_message_id()  # one per change, the same at every destination
        for destination_id, filters in routes:
            if filters.matches(event_type, domain if isinstance(domain, str) else None):
                rows.append(
                    {
                        "destination_id": destination_id,
                        "message_id": message_id,
                        "event_seq": seqs[prediction_id],
                        "prediction_key": keys[prediction_id],
                        "prediction_id": prediction_id,
                        "type": event_type,
                        "state": PENDING,
                        "attempts": 0,
                        "created_at": now,
                        "next_attempt_at": now,
                    }
                )
    if rows:
        connection.execute(_INSERT, rows)


@dataclass(frozen=True)
class Claimed:
    """One leased row with its payload, ready to publish."""

    id: int
    message_id: str
    prediction_id: str
    type: str
    attempts: int  # including this one
    created_at: datetime  # when the change was written: max age and latency count from it
    timestamp: datetime  # the change's own time, the message's `timestamp`
    data_json: str = field(repr=False)  # the prediction as GET returns it, JSON text


def _eligible(now_param: str = "now") -> sa.Select[tuple[int]]:
    """Due, unleased pending rows whose prediction has no earlier pending row here: that
    last condition is what keeps a later status from overtaking an earlier one."""
    earlier = OUTBOX.alias("earlier")
    now: sa.BindParameter[datetime] = sa.bindparam(now_param)
    blocked = (
        sa.select(earlier.c.id)
        .where(
            earlier.c.destination_id == OUTBOX.c.destination_id,
            earlier.c.prediction_key == OUTBOX.c.prediction_key,
            earlier.c.state == PENDING,
            earlier.c.id < OUTBOX.c.id,
        )
        .exists()
    )
    return (
        sa.select(OUTBOX.c.id)
        .where(
            OUTBOX.c.destination_id == sa.bindparam("for_destination"),
            OUTBOX.c.state == PENDING,
            OUTBOX.c.next_attempt_at <= now,
            sa.or_(OUTBOX.c.lease_until.is_(None), OUTBOX.c.lease_until <= now),
            ~blocked,
        )
        .order_by(OUTBOX.c.id)
    )


# SQLite renders no FOR UPDATE: its writers are serialized (BEGIN IMMEDIATE), which makes
# the select-and-lease below atomic there anyway.
_CLAIMABLE = _eligible().limit(sa.bindparam("limit")).with_for_update(skip_locked=True, of=OUTBOX)
_HAS_DUE = _eligible().limit(1)
# One statement: the claim runs on the process's single writer (SQLite), where every
# statement is time the receiver's own commits wait for.
_LEASE = (
    OUTBOX.update()
    .where(OUTBOX.c.id.in_(_CLAIMABLE.scalar_subquery()))
    .values(
        lease_until=sa.bindparam("lease_until"),
        lease_owner=sa.bindparam("owner"),
        attempts=OUTBOX.c.attempts + 1,
    )
    .returning(
        OUTBOX.c.id,
        OUTBOX.c.message_id,
        OUTBOX.c.prediction_id,
        OUTBOX.c.type,
        OUTBOX.c.attempts,
        OUTBOX.c.created_at,
        OUTBOX.c.event_seq,
    )
)
# The change as JSON text, not decoded: it goes out as bytes inside the message, and
# decoding it only to encode it again was the relay's largest single cost.
_PAYLOADS = sa.select(
    EVENT.c.seq, EVENT.c.created_at, sa.cast(EVENT.c.data, sa.Text).label("data_json")
).where(EVENT.c.seq.in_(sa.bindparam("seqs", expanding=True)))


def has_due(connection: Connection, destination_id: str, now: datetime) -> bool:
    """A read-only look before claiming, so an idle relay never opens a write transaction."""
    row = connection.execute(_HAS_DUE, {"for_destination": destination_id, "now": now}).first()
    return row is not None


@dataclass(frozen=True)
class Lease:
    """A claimed row, before its payload is read."""

    id: int
    message_id: str
    prediction_id: str
    type: str
    attempts: int
    created_at: datetime
    event_seq: int


def claim(
    connection: Connection,
    destination_id: str,
    *,
    now: datetime,
    lease: timedelta,
    owner: str,
    limit: int,
) -> list[Lease]:
    """Lease up to `limit` rows (one per prediction at most) inside the caller's transaction."""
    rows = connection.execute(
        _LEASE,
        {
            "for_destination": destination_id,
            "now": now,
            "limit": limit,
            "lease_until": now + lease,
            "owner": owner,
        },
    )
    leases = [
        Lease(
            row.id,
            row.message_id,
            row.prediction_id,
            row.type,
            row.attempts,
            # SQLite hands back naive datetimes; every time we store is UTC.
            as_utc(row.created_at),
            row.event_seq,
        )
        for row in rows
    ]
    return sorted(leases, key=lambda lease: lease.id)


def with_payloads(connection: Connection, leases: Sequence[Lease]) -> list[Claimed]:
    """The leased rows with their changes, read outside the write transaction: event rows
    never change, so any connection may read them."""
    if not leases:
        return []
    events = {
        row.seq: row
        for row in connection.execute(_PAYLOADS, {"seqs": [lease.event_seq for lease in leases]})
    }
    return [
        Claimed(
            id=lease.id,
            message_id=lease.message_id,
            prediction_id=lease.prediction_id,
            type=lease.type,
            attempts=lease.attempts,
            created_at=lease.created_at,
            timestamp=as_utc(events[lease.event_seq].created_at),
            data_json=events[lease.event_seq].data_json,
        )
        for lease in leases
    ]


@dataclass
class Settlement:
    """What one round of publishing decided, written back in one transaction."""

    destination_id: str
    now: datetime
    delivered: list[int] = field(default_factory=list)
    retries: list[tuple[int, datetime, str]] = field(default_factory=list)  # id, when, why
    dead: list[tuple[int, str]] = field(default_factory=list)
    released: list[int] = field(default_factory=list)  # not attempted after all (disabled)
    last_error: str | None = None
    disabled_reason: str | None = None


_ACK = OUTBOX.delete().where(OUTBOX.c.id.in_(sa.bindparam("ids", expanding=True)))
_RETRY = (
    OUTBOX.update()
    .where(OUTBOX.c.id == sa.bindparam("row_id"))
    .values(
        lease_until=None,
        lease_owner=None,
        next_attempt_at=sa.bindparam("next_at"),
        last_error=sa.bindparam("error"),
    )
)
_DEAD = (
    OUTBOX.update()
    .where(OUTBOX.c.id == sa.bindparam("row_id"))
    .values(
        state=DEAD,
        lease_until=None,
        lease_owner=None,
        dead_at=sa.bindparam("dead_at"),
        last_error=sa.bindparam("error"),
    )
)
_RELEASE = (
    OUTBOX.update()
    .where(OUTBOX.c.id.in_(sa.bindparam("ids", expanding=True)))
    .values(lease_until=None, lease_owner=None, attempts=OUTBOX.c.attempts - 1)
)


def settle(connection: Connection, settlement: Settlement) -> None:
    s = settlement
    if s.delivered:
        connection.execute(_ACK, {"ids": s.delivered})
    if s.retries:
        connection.execute(
            _RETRY,
            [{"row_id": i, "next_at": at, "error": e[:ERROR_WIDTH]} for i, at, e in s.retries],
        )
    if s.dead:
        connection.execute(
            _DEAD, [{"row_id": i, "dead_at": s.now, "error": e[:ERROR_WIDTH]} for i, e in s.dead]
        )
    if s.released:
        connection.execute(_RELEASE, {"ids": s.released})
    values: dict[str, Any] = {}
    if s.delivered:
        values["last_delivered_at"] = s.now
    if s.last_error is not None:
        values.update(last_error=s.last_error[:ERROR_WIDTH], last_error_at=s.now)
    if s.disabled_reason is not None:
        values.update(disabled_at=s.now, disabled_reason=s.disabled_reason[:ERROR_WIDTH])
    if values:
        connection.execute(
            DESTINATION.update().where(DESTINATION.c.id == s.destination_id).values(**values)
        )

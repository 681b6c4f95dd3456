"""The destination registry and what operations read of it: status, backlog, dead letters.

A process started with `VLMHOOKS_FORWARD_TO` makes that list the database's active
destinations (the latest start wins); one started without it leaves the registry alone,
so a web process need not repeat the relay's configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from schemas.contract import as_utc
from vlmhooks.forward.destinations import Destination
from vlmhooks.public import iso_utc
from vlmhooks.store.outbox import DEAD, DESTINATION, OUTBOX, PENDING

__all__ = [
    "Backlog",
    "DestinationState",
    "backlog",
    "dead_letters",
    "destination_state",
    "forwarding_status",
    "retry_dead_letters",
    "sync_destinations",
]


def sync_destinations(
    connection: Connection, destinations: Sequence[Destination], now: datetime
) -> None:
    """Register `destinations` as the active ones; deactivate every other."""
    insert: Any = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    for destination in destinations:
        values = {
            "id": destination.id,
            "kind": destination.kind,
            "target": destination.target,
            "events": list(destination.filters.events) if destination.filters.events else None,
            "domain": destination.filters.domain,
            "active": True,
            "updated_at": now,
        }
        statement = insert(DESTINATION).values(**values)
        update = {key: statement.excluded[key] for key in values if key != "id"}
        connection.execute(statement.on_conflict_do_update(index_elements=["id"], set_=update))
    ids = [destination.id for destination in destinations]
    connection.execute(
        DESTINATION.update()
        .where(DESTINATION.c.active.is_(True), DESTINATION.c.id.not_in(ids))
        .values(active=False, updated_at=now)
    )


@dataclass(frozen=True)
class DestinationState:
    active: bool
    disabled_reason: str | None


def destination_state(connection: Connection, destination_id: str) -> DestinationState | None:
    row = connection.execute(
        sa.select(
            DESTINATION.c.active, DESTINATION.c.disabled_at, DESTINATION.c.disabled_reason
        ).where(DESTINATION.c.id == destination_id)
    ).first()
    if row is None:
        return None
    reason = (row.disabled_reason or "disabled") if row.disabled_at is not None else None
    return DestinationState(active=row.active, disabled_reason=reason)


@dataclass(frozen=True)
class Backlog:
    pending: int
    dead: int
    oldest_pending: datetime | None


def backlog(connection: Connection) -> dict[str, Backlog]:
    """Pending and dead rows per destination, and the oldest pending one's write time."""
    rows = connection.execute(
        sa.select(
            OUTBOX.c.destination_id,
            OUTBOX.c.state,
            sa.func.count(),
            sa.func.min(OUTBOX.c.created_at),
        ).group_by(OUTBOX.c.destination_id, OUTBOX.c.state)
    )
    found: dict[str, dict[str, tuple[int, datetime | None]]] = {}
    for destination_id, state, count, oldest in rows:
        found.setdefault(destination_id, {})[state] = (count, oldest)
    # Every active destination is listed, at zero when it has nothing waiting: a gauge that
    # disappears when the backlog is empty reads as "unknown", not as "all delivered".
    active = connection.execute(sa.select(DESTINATION.c.id).where(DESTINATION.c.active.is_(True)))
    result = {destination_id: Backlog(0, 0, None) for destination_id in active.scalars()}
    for destination_id, states in found.items():
        pending, oldest = states.get(PENDING, (0, None))
        dead, _ = states.get(DEAD, (0, None))
        result[destination_id] = Backlog(pending, dead, None if oldest is None else as_utc(oldest))
    return result


def forwarding_status(connection: Connection, now: datetime) -> list[dict[str, Any]]:
    """`GET /v1/forwarding`: active destinations, and inactive ones that still hold rows."""
    counts = backlog(connection)
    rows = connection.execute(sa.select(DESTINATION).order_by(DESTINATION.c.id)).mappings()
    listed = []
    for row in rows:
        counted = counts.get(row["id"], Backlog(0, 0, None))
        if not row["active"] and not (counted.pending or counted.dead):
            continue
        oldest = counted.oldest_pending
        listed.append(
            {
                "id": row["id"],
                "kind": row["kind"],
                "target": row["target"],
                "filters": {"events": row["events"], "domain": row["domain"]},
                "configured": row["active"],
                "enabled": row["disabled_at"] is None,
                "disabled_at": iso_utc(row["disabled_at"]),
                "disabled_reason": row["disabled_reason"],
                "backlog": counted.pending,
                "oldest_pending_age_seconds": (
                    None if oldest is None else max(0.0, (now - oldest).total_seconds())
                ),
                "dead_letters": counted.dead,
                "last_error": row["last_error"],
                "last_error_at": iso_utc(row["last_error_at"]),
                "last_delivered_at": iso_utc(row["last_delivered_at"]),
            }
        )
    return listed


def dead_letters(
    connection: Connection, destination_id: str, *, after: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Oldest first, keyset-paginated by row id; the second value is the next `after`."""
    query = (
        sa.select(
            OUTBOX.c.id,
            OUTBOX.c.message_id,
            OUTBOX.c.prediction_id,
            OUTBOX.c.type,
            OUTBOX.c.attempts,
            OUTBOX.c.created_at,
            OUTBOX.c.dead_at,
            OUTBOX.c.last_error,
        )
        .where(OUTBOX.c.destination_id == destination_id, OUTBOX.c.state == DEAD)
        .order_by(OUTBOX.c.id)
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(OUTBOX.c.id > after)
    rows = connection.execute(query).all()
    page = [
        {
            "id": row.id,
            "message_id": row.message_id,
            "prediction_id": row.prediction_id,
            "type": row.type,
            "attempts": row.attempts,
            "created_at": iso_utc(row.created_at),
            "dead_at": iso_utc(row.dead_at),
            "last_error": row.last_error,
        }
        for row in rows[:limit]
    ]
    return page, (rows[limit - 1].id if len(rows) > limit else None)


def retry_dead_letters(
    connection: Connection,
    destination_id: str,
    now: datetime,
    message_ids: Sequence[str] | None = None,
) -> int:
    """Make dead letters (all, or those named) pending again, due now; re-enable the
    destination, since asking to deliver again says the operator fixed what was wrong."""
    query = OUTBOX.update().where(OUTBOX.c.destination_id == destination_id, OUTBOX.c.state == DEAD)
    if message_ids is not None:
        query = query.where(OUTBOX.c.message_id.in_(list(message_ids)))
    result = connection.execute(
        # The maximum age counts again from now, or the first failure would kill it again.
        query.values(state=PENDING, created_at=now, next_attempt_at=now, dead_at=None, attempts=0)
    )
    connection.execute(
        DESTINATION.update()
        .where(DESTINATION.c.id == destination_id)
        .values(disabled_at=None, disabled_reason=None, updated_at=now)
    )
    return int(result.rowcount)


def destination_exists(connection: Connection, destination_id: str) -> bool:
    row = connection.execute(
        sa.select(DESTINATION.c.id).where(DESTINATION.c.id == destination_id)
    ).first()
    return row is not None

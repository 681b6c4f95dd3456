"""Replay: re-ingest stored deliveries through the callback's own checks and write path, after
a contract change, a fix or a schema update (ARCHITECTURE.md, "Replay").

Everything here runs inside the caller's write transaction (the group committer in `serve`,
an engine of its own in the CLI); a dry run is the same work, rolled back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from receiver.http.shapes import MAX_REPLAY_LIMIT, ReplayOutcome, ReplayReport, ReplayResult
from receiver.ingest.verify import (
    SignaturePolicy,
    require_json_content_type,
    verify_provider_signatures,
)
from vlmhooks.errors import PredictionConflict, ProblemError
from vlmhooks.ingest.prediction import decode_json, validate_prediction
from vlmhooks.ingest.schema_check import check_response_schema
from vlmhooks.ingest.storable import storable_content
from vlmhooks.public import public_prediction
from vlmhooks.store.batch import apply_prediction_writes, lock_event_feed
from vlmhooks.store.records import DeliveryRecord, DeliveryVerdict, PredictionWrite
from vlmhooks.store.tables import (
    DELIVERY,
    EVENT,
    PREDICTION,
    PREDICTION_READ,
    SUBMISSION,
    deliveries_of_prediction,
)

__all__ = [
    "DEFAULT_REPLAY_LIMIT",
    "MAX_REPLAY_LIMIT",
    "REPLAY_SOURCE",
    "ReplaySelection",
    "replay_report",
    "replay_selected",
    "select_deliveries",
]

REPLAY_SOURCE = "replay"
DEFAULT_REPLAY_LIMIT = 100
# Bodies that came with a provider signature (and a media type); the other sources (`sync`,
# `poll`) were read from the API over its authenticated channel and stored in our encoding.
_SIGNED_SOURCES = frozenset({"callback", "fetch"})
# Never re-ingested: a 401 body was never authenticated, a 413 body was never read whole.
_NEVER_REPLAYED = {
    401: "refused at the signature check when received: it was never authenticated",
    413: "over VLMHOOKS_MAX_BODY_BYTES when received: only its head was read",
}


@dataclass(frozen=True)
class ReplaySelection:
    """Which deliveries to replay; every field narrows, none means all (in arrival order)."""

    prediction_id: str | None = None
    submission_id: str | None = None
    verdicts: tuple[DeliveryVerdict, ...] = ()
    received_after: datetime | None = None
    received_before: datetime | None = None
    after_id: int | None = None
    limit: int = DEFAULT_REPLAY_LIMIT


def select_deliveries(connection: Connection, selection: ReplaySelection) -> list[RowMapping]:
    """The selected deliveries, oldest first; replay rows themselves are never replayed."""
    table = DELIVERY
    query = sa.select(table).where(table.c.source != REPLAY_SOURCE)
    if selection.prediction_id is not None:
        query = query.where(deliveries_of_prediction(selection.prediction_id))
    if selection.submission_id is not None:
        query = query.where(table.c.submission_id == selection.submission_id)
    if selection.verdicts:
        query = query.where(table.c.verdict.in_(selection.verdicts))
    if selection.received_after is not None:
        query = query.where(table.c.received_at >= selection.received_after)
    if selection.received_before is not None:
        query = query.where(table.c.received_at < selection.received_before)
    if selection.after_id is not None:
        query = query.where(table.c.id > selection.after_id)
    query = query.order_by(table.c.id).limit(selection.limit)
    return list(connection.execute(query).mappings().all())


def replay_selected(
    connection: Connection,
    selection: ReplaySelection,
    policy: SignaturePolicy,
    *,
    now: datetime,
) -> list[ReplayResult]:
    """Replay one page of selected deliveries inside the caller's write transaction."""
    rows = select_deliveries(connection, selection)
    results: list[ReplayResult] = [_result(row, "refused", None, None) for row in rows]
    writes: list[PredictionWrite] = []
    slots: list[int] = []
    for index, row in enumerate(rows):
        try:
            writes.append(_rebuilt_write(row, policy, now=now))
        except _Unreplayable as exc:
            results[index]["reason"] = str(exc)
            continue
        except ProblemError as exc:
            results[index]["reason"] = f"still refused: {exc.status} {exc.title}: {exc.detail}"
            continue
        slots.append(index)
    # Conflicts come back as values and are not logged again: the original row stands.
    outcomes = apply_prediction_writes(connection, writes, log_conflicts=False)
    unchanged: dict[str, int] = {}
    for index, write, outcome in zip(slots, writes, outcomes, strict=True):
        if isinstance(outcome, PredictionConflict):
            results[index]["reason"] = f"still refused: 409 {outcome.title}: {outcome.detail}"
            continue
        results[index] = _result(rows[index], outcome.verdict, outcome.status, None)
        results[index]["prediction_id"] = outcome.prediction_id  # a refused row may lack it
        if outcome.verdict in ("duplicate", "stale"):
            unchanged[write.prediction.id] = index
    for prediction_id, index in unchanged.items():
        if _recheck_schema(connection, prediction_id, now=now):
            results[index]["outcome"] = "updated"
            results[index]["reason"] = "json_schema verdict re-checked against the submission"
    return results


def replay_report(results: Sequence[ReplayResult], *, dry_run: bool, more: bool) -> ReplayReport:
    counts: dict[str, int] = {}
    for result in results:
        counts[result["outcome"]] = counts.get(result["outcome"], 0) + 1
    return {
        "dry_run": dry_run,
        "results": list(results),
        "counts": counts,
        "next_after_id": results[-1]["delivery_id"] if more and results else None,
    }


class _Unreplayable(Exception):
    """What was kept of this delivery cannot be trusted as the sender's whole, signed body."""


def _rebuilt_write(row: RowMapping, policy: SignaturePolicy, *, now: datetime) -> PredictionWrite:
    """The callback route's checks, in its order, over the stored body (ARCHITECTURE)."""
    body: bytes | None = row["body"]
    reason = _NEVER_REPLAYED.get(row["http_status"])
    if reason is not None:
        raise _Unreplayable(reason)
    if body is None:
        raise _Unreplayable("no body kept for this delivery")
    if row["body_truncated"]:
        # A prefix proves nothing: its signature cannot verify and its JSON would not parse;
        # worse, a prefix that still parsed would be a different prediction.
        raise _Unreplayable(
            f"the body was cut at {len(body)} bytes (VLMHOOKS_DELIVERY_BODY_CAP) when stored"
        )
    headers: dict[str, str] = row["headers"] or {}
    if row["source"] in _SIGNED_SOURCES:
        # As of the time it was received: the Standard Webhooks timestamp was within
        # tolerance then; the secrets are today's (keep a rotated secret listed to replay).
        verify_provider_signatures(body, headers, policy, now=row["received_at"].timestamp())
        require_json_content_type(headers.get("content-type"))
    prediction = validate_prediction(decode_json(body), raw=body)
    content_hash, content_bytes = storable_content(prediction)
    return PredictionWrite(
        prediction=prediction,
        submission_id=row["submission_id"],
        source=REPLAY_SOURCE,
        received_at=now,
        # The replay's own delivery row points at the original by hash; the body stays there.
        delivery=DeliveryRecord(body_sha256=row["body_sha256"], headers=headers),
        content_sha256=content_hash,
        content_bytes=content_bytes,
    )


def _recheck_schema(connection: Connection, prediction_id: str, *, now: datetime) -> bool:
    """Re-judge the stored response against its submission's json_schema; True when it changed.

    The forward-only upsert leaves an unchanged prediction alone, so a corrected schema
    would otherwise never reach the verdicts already stored.
    """
    row = (
        connection.execute(sa.select(*PREDICTION_READ).where(PREDICTION.c.id == prediction_id))
        .mappings()
        .first()
    )
    if row is None or row["submission_id"] is None:
        return False
    json_schema = connection.execute(
        sa.select(SUBMISSION.c.json_schema).where(SUBMISSION.c.id == row["submission_id"])
    ).scalar()
    valid, errors = check_response_schema(json_schema, row["response"])
    if (valid, errors) == (row["schema_valid"], row["schema_errors"]):
        return False
    connection.execute(
        PREDICTION.update()
        .where(PREDICTION.c.id == prediction_id)
        .values(schema_valid=valid, schema_errors=errors, updated_at=now)
    )
    # Readers following the event feed see the new verdict like any other change.
    changed: dict[str, Any] = {
        **row,
        "schema_valid": valid,
        "schema_errors": errors,
        "updated_at": now,
    }
    # The prediction's key is locked (the replay's batch read it); the feed's lock comes
    # after it, as in every writer (vlmhooks/store/batch.py).
    lock_event_feed(connection)
    connection.execute(
        EVENT.insert(),
        {
            "prediction_key": row["row_key"],
            "prediction_id": prediction_id,
            "type": f"prediction.{row['status']}",
            "data": public_prediction(changed),
            "created_at": now,
        },
    )
    return True


def _result(
    row: RowMapping, outcome: ReplayOutcome, status: str | None, reason: str | None
) -> ReplayResult:
    return {
        "delivery_id": row["id"],
        "prediction_id": row["prediction_id"],
        "submission_id": row["submission_id"],
        "original_verdict": row["verdict"],
        "outcome": outcome,
        "status": status,
        "reason": reason,
    }

"""Applying one verified prediction to the database: upsert forward-only, log, emit an event.

Everything here runs inside a caller's transaction (the group committer's batch, or a
single `ingest_prediction`), so a 2xx is only ever sent for committed rows. The upsert is
one `INSERT ... ON CONFLICT DO UPDATE ... WHERE` so concurrent writers in several
processes cannot regress a status: the database, not the process, decides.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from receiver.errors import PredictionConflict
from schemas.contract import PredictionResponse, as_utc
from schemas.enums import STATUS_RANK, TERMINAL_STATUSES, Status
from schemas.tables import Delivery, Prediction, PredictionEvent, Submission, WebhookMessage

Verdict = Literal["stored", "updated", "duplicate", "stale"]
DeliveryVerdict = Literal["stored", "updated", "duplicate", "stale", "replay", "rejected"]

PREDICTION = Prediction.__table__  # type: ignore[attr-defined]
DELIVERY = Delivery.__table__  # type: ignore[attr-defined]
EVENT = PredictionEvent.__table__  # type: ignore[attr-defined]
SUBMISSION = Submission.__table__  # type: ignore[attr-defined]
WEBHOOK_MESSAGE = WebhookMessage.__table__  # type: ignore[attr-defined]

EVENTS_CHANNEL = "vlmhooks_events"
# One key for the whole event feed: holding it until commit makes `seq` order = commit
# order across processes, so an SSE reader resuming "after seq N" never misses a row.
EVENT_FEED_LOCK_KEY = 0x766C6D686F6F6B73
TERMINAL_RANK = STATUS_RANK[Status.COMPLETED]


@dataclass(frozen=True)
class DeliveryRecord:
    """What the audit log keeps of one received request."""

    body_sha256: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    body_truncated: bool = False


@dataclass(frozen=True)
class PredictionWrite:
    """One verified, parsed delivery, ready to apply."""

    prediction: PredictionResponse
    submission_id: str | None
    source: str
    received_at: datetime
    delivery: DeliveryRecord
    webhook_id: str | None = None


@dataclass(frozen=True)
class IngestOutcome:
    prediction_id: str
    status: str
    verdict: Verdict
    event_seq: int | None = None
    schema_valid: bool | None = None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_sha256(wire: dict[str, Any]) -> str:
    """Hash of the canonical JSON, so the same prediction polled or called back dedups."""
    return sha256_hex(orjson.dumps(wire, option=orjson.OPT_SORT_KEYS))


class _Statements:
    """Every statement of the write path, built once per dialect.

    Building a Core statement (and its cache key) per call cost more than executing it;
    these are immutable, so the writer threads share them and pass only parameters.
    """

    def __init__(self, dialect_name: str) -> None:
        insert: Any = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
        self.is_postgresql = dialect_name == "postgresql"
        self.advisory_lock = sa.select(sa.func.pg_advisory_xact_lock(EVENT_FEED_LOCK_KEY))
        self.notify = sa.select(sa.func.pg_notify(EVENTS_CHANNEL, ""))
        self.submission_context = sa.select(
            SUBMISSION.c.prediction_id, SUBMISSION.c.domain, SUBMISSION.c.json_schema
        ).where(SUBMISSION.c.id == sa.bindparam("submission_id"))
        self.remember_webhook = (
            insert(WEBHOOK_MESSAGE)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(WEBHOOK_MESSAGE.c.id)
        )
        self.current = sa.select(PREDICTION.c.status, PREDICTION.c.body_sha256).where(
            PREDICTION.c.id == sa.bindparam("prediction_id")
        )
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
                    table.c.status_rank < TERMINAL_RANK,
                    excluded.body_sha256 != table.c.body_sha256,
                ),
            ),
        ).returning(table.c.delivery_count)
        self.insert_event = insert(EVENT).returning(EVENT.c.seq)
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
        self.insert_delivery = DELIVERY.insert()


_STATEMENTS = {name: _Statements(name) for name in ("postgresql", "sqlite")}


def _statements(connection: Connection) -> _Statements:
    return _STATEMENTS[connection.dialect.name]


def begin_write_batch(connection: Connection) -> None:
    statements = _statements(connection)
    if statements.is_postgresql:
        connection.execute(statements.advisory_lock)


def end_write_batch(connection: Connection, wrote_events: bool) -> None:
    statements = _statements(connection)
    if wrote_events and statements.is_postgresql:
        # Delivered by PostgreSQL at commit, to every LISTENing receiver process.
        connection.execute(statements.notify)


@dataclass(frozen=True)
class SubmissionContext:
    prediction_id: str | None
    domain: str | None
    json_schema: dict[str, Any] | None


def load_submission_context(connection: Connection, submission_id: str) -> SubmissionContext | None:
    row = connection.execute(
        _statements(connection).submission_context, {"submission_id": submission_id}
    ).first()
    if row is None:
        return None
    return SubmissionContext(row.prediction_id, row.domain, row.json_schema)


def check_response_schema(
    json_schema: dict[str, Any] | None, response: Any
) -> tuple[bool | None, list[str] | None]:
    """Validate `response` against the submission's schema; the verdict is stored, never fatal."""
    if not json_schema:
        return None, None
    import jsonschema

    try:
        validator_class = jsonschema.validators.validator_for(json_schema)
        validator_class.check_schema(json_schema)
    except jsonschema.SchemaError as exc:
        return False, [f"json_schema itself is invalid: {exc.message}"]
    validator = validator_class(json_schema)
    try:
        errors = sorted(validator.iter_errors(response), key=lambda e: list(e.absolute_path))
    except Exception as exc:  # e.g. an unresolvable remote $ref: a verdict, never a failure
        return False, [f"json_schema could not be applied: {type(exc).__name__}: {exc}"[:500]]
    messages = [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in errors[:50]
    ]
    return (not messages), (messages or None)


def apply_prediction_write(connection: Connection, write: PredictionWrite) -> IngestOutcome:
    """Apply one delivery inside the caller's transaction.

    Raises `PredictionConflict` (before writing anything for it) when the submission is
    already bound to another prediction id.
    """
    statements = _statements(connection)
    prediction = write.prediction
    context = (
        load_submission_context(connection, write.submission_id) if write.submission_id else None
    )
    if context is not None and context.prediction_id and context.prediction_id != prediction.id:
        raise PredictionConflict(
            f"submission {write.submission_id} is bound to prediction {context.prediction_id}, "
            f"not {prediction.id}",
            submission_id=write.submission_id,
            recorded_prediction_id=context.prediction_id,
        )

    if write.webhook_id is not None:
        fresh = connection.execute(
            statements.remember_webhook,
            {
                "id": write.webhook_id,
                "prediction_id": prediction.id,
                "received_at": write.received_at,
            },
        ).first()
        if fresh is None:
            replayed = _current_status(connection, prediction.id) or prediction.status.value
            _log_delivery(connection, write, "replay", "webhook-id already accepted", 200)
            return IngestOutcome(prediction.id, replayed, "duplicate")

    schema_valid, schema_errors = check_response_schema(
        context.json_schema if context else None, prediction.response
    )
    values = _prediction_values(write, context, schema_valid, schema_errors)
    applied = connection.execute(statements.upsert_prediction, values).first()

    if applied is None:
        current = connection.execute(statements.current, {"prediction_id": prediction.id}).one()
        verdict: Verdict = "duplicate" if current.body_sha256 == values["body_sha256"] else "stale"
        reason = (
            "exact duplicate"
            if verdict == "duplicate"
            else f"{prediction.status.value} arrived after {current.status}; kept {current.status}"
        )
        _log_delivery(connection, write, verdict, reason, 200)
        return IngestOutcome(prediction.id, current.status, verdict)

    status = prediction.status.value
    verdict = "stored" if applied.delivery_count == 1 else "updated"
    event_seq = connection.execute(
        statements.insert_event,
        {
            "prediction_id": prediction.id,
            "type": f"prediction.{status}",
            "data": public_prediction({**values, "delivery_count": applied.delivery_count}),
            "created_at": write.received_at,
        },
    ).scalar_one()
    # Skipped without a row: a callback URL minted by `vlm-receiver callback-url` has none.
    if context is not None:
        connection.execute(
            statements.link_submission,
            {
                "submission_id": write.submission_id,
                "linked_prediction_id": prediction.id,
                "new_status": status,
                "linked_at": write.received_at,
            },
        )
    _log_delivery(connection, write, verdict, None, 200)
    return IngestOutcome(prediction.id, status, verdict, event_seq, schema_valid)


def _prediction_values(
    write: PredictionWrite,
    context: SubmissionContext | None,
    schema_valid: bool | None,
    schema_errors: list[str] | None,
) -> dict[str, Any]:
    prediction = write.prediction
    extra = prediction.extra_fields
    domain = extra.get("domain") if isinstance(extra.get("domain"), str) else None
    if domain is None and context is not None:
        domain = context.domain
    status = prediction.status
    return {
        "id": prediction.id,
        "submission_id": write.submission_id,
        "domain": domain,
        "status": status.value,
        "status_rank": STATUS_RANK[status],
        "response": prediction.response,
        "usage": None if prediction.usage is None else prediction.usage.model_dump(mode="json"),
        "extra": extra or None,
        "created_at": prediction.created_at,
        "completed_at": prediction.completed_at,
        "received_at": write.received_at,
        "updated_at": write.received_at,
        "delivery_count": 1,
        "source": write.source,
        "body_sha256": content_sha256(prediction.to_wire()),
        "schema_valid": schema_valid,
        "schema_errors": schema_errors,
    }


def log_rejected_delivery(
    connection: Connection,
    *,
    prediction_id: str | None,
    submission_id: str | None,
    source: str,
    received_at: datetime,
    delivery: DeliveryRecord,
    reason: str,
    http_status: int,
) -> None:
    """Audit a delivery that passed the token check but was refused."""
    _insert_delivery(
        connection,
        prediction_id=prediction_id,
        submission_id=submission_id,
        received_at=received_at,
        verdict="rejected",
        reason=reason[:2000],
        http_status=http_status,
        source=source,
        record=delivery,
    )


def _log_delivery(
    connection: Connection,
    write: PredictionWrite,
    verdict: DeliveryVerdict,
    reason: str | None,
    http_status: int,
) -> None:
    _insert_delivery(
        connection,
        prediction_id=write.prediction.id,
        submission_id=write.submission_id,
        received_at=write.received_at,
        verdict=verdict,
        reason=reason,
        http_status=http_status,
        source=write.source,
        record=write.delivery,
    )


def _insert_delivery(
    connection: Connection,
    *,
    prediction_id: str | None,
    submission_id: str | None,
    received_at: datetime,
    verdict: DeliveryVerdict,
    reason: str | None,
    http_status: int,
    source: str,
    record: DeliveryRecord,
) -> None:
    connection.execute(
        _statements(connection).insert_delivery,
        {
            "prediction_id": prediction_id,
            "submission_id": submission_id,
            "received_at": received_at,
            "verdict": verdict,
            "reason": reason,
            "http_status": http_status,
            "source": source,
            "body_sha256": record.body_sha256,
            "headers": record.headers or None,
            "body": record.body,
            "body_truncated": record.body_truncated,
        },
    )


def _current_status(connection: Connection, prediction_id: str) -> str | None:
    row = connection.execute(
        _statements(connection).current, {"prediction_id": prediction_id}
    ).first()
    return None if row is None else str(row.status)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat().replace("+00:00", "Z")


def public_prediction(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    """A Prediction row in the API's own `PredictionResponse` shape.

    Unknown fields the API sent are restored at the top level; our own fields live under
    the single `vlmhooks` key so they can never clash with the API's.
    """
    body: dict[str, Any] = dict(row["extra"] or {})
    body.update(
        {
            "usage": row["usage"],
            "id": row["id"],
            "created_at": _iso(row["created_at"]),
            "completed_at": _iso(row["completed_at"]),
            "response": row["response"],
            "status": row["status"],
        }
    )
    if row["domain"] is not None:
        body.setdefault("domain", row["domain"])
    body["vlmhooks"] = {
        "submission_id": row["submission_id"],
        "received_at": _iso(row["received_at"]),
        "updated_at": _iso(row["updated_at"]),
        "delivery_count": row["delivery_count"],
        "source": row["source"],
        "schema_valid": row["schema_valid"],
        "schema_errors": row["schema_errors"],
        "terminal": Status(row["status"]) in TERMINAL_STATUSES,
    }
    return body

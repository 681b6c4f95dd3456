"""Applying one verified prediction to the database: upsert forward-only, log, emit an event.

Everything here runs inside a caller's transaction (the group committer's batch, or a
single `ingest_prediction`), so a 2xx is only ever sent for committed rows. The upsert is
one `INSERT ... ON CONFLICT DO UPDATE ... WHERE` so concurrent writers in several
processes cannot regress a status: the database, not the process, decides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from schemas.contract import PredictionResponse
from schemas.enums import STATUS_RANK, Status
from schemas.tables import Delivery, Prediction, PredictionEvent, Submission, WebhookMessage
from vlmhooks.errors import PredictionConflict
from vlmhooks.outbox import write_outbox_rows
from vlmhooks.public import public_prediction

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
DOMAIN_WIDTH: int = PREDICTION.c.domain.type.length


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
    # The dedup hash of `prediction`, when the caller already computed it (see storable).
    content_sha256: str | None = None


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
        context_columns = (
            SUBMISSION.c.id,
            SUBMISSION.c.prediction_id,
            SUBMISSION.c.domain,
            SUBMISSION.c.json_schema,
        )
        self.submission_context = sa.select(*context_columns).where(
            SUBMISSION.c.id == sa.bindparam("submission_id")
        )
        self.submission_contexts = sa.select(*context_columns).where(
            SUBMISSION.c.id.in_(sa.bindparam("submission_ids", expanding=True))
        )
        self.known_webhooks = sa.select(WEBHOOK_MESSAGE.c.id).where(
            WEBHOOK_MESSAGE.c.id.in_(sa.bindparam("ids", expanding=True))
        )
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
                    table.c.status_rank < TERMINAL_RANK,
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
    (result,) = apply_prediction_writes(connection, [write], log_conflicts=False)
    if isinstance(result, PredictionConflict):
        raise result
    return result


def apply_prediction_writes(
    connection: Connection, writes: Sequence[PredictionWrite], *, log_conflicts: bool = True
) -> list[IngestOutcome | PredictionConflict]:
    """Apply deliveries in arrival order, as if one by one, with a handful of statements.

    One statement per step for the whole batch (not per write) is what makes group commit
    pay: the upsert, the events and the delivery log each go out as one multi-row statement.
    A conflict comes back as a value (and, with `log_conflicts`, as a rejected delivery row).
    """
    batch = _Batch(connection, writes)
    batch.classify(log_conflicts)
    batch.upsert()
    batch.finish()
    return batch.results()


class _Batch:
    """The working state of `apply_prediction_writes`; each step is one or two statements."""

    def __init__(self, connection: Connection, writes: Sequence[PredictionWrite]) -> None:
        self.connection = connection
        self.statements = _statements(connection)
        self.writes = writes
        self.outcomes: list[IngestOutcome | PredictionConflict | None] = [None] * len(writes)
        self.pending: list[int] = []  # indexes still to upsert, in arrival order
        self.replays: list[int] = []
        self.deliveries: list[tuple[int, dict[str, Any]]] = []
        self.links: dict[str, dict[str, Any]] = {}
        self.values: dict[int, dict[str, Any]] = {}
        submission_ids = sorted({w.submission_id for w in writes if w.submission_id})
        self.contexts: dict[str, SubmissionContext] = {}
        if submission_ids:
            rows = connection.execute(
                self.statements.submission_contexts, {"submission_ids": submission_ids}
            )
            for row in rows:
                self.contexts[row.id] = SubmissionContext(
                    row.prediction_id, row.domain, row.json_schema
                )
        # Submissions whose prediction id is recorded, as linking proceeds in arrival order.
        self.linked = {sid for sid, ctx in self.contexts.items() if ctx.prediction_id is not None}

    def classify(self, log_conflicts: bool) -> None:
        """One pass in arrival order: conflict, replay, or to upsert (binding its submission).

        Writers are serialized (SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory lock), so
        the webhook ids read here cannot be taken by another process before we insert ours.
        """
        known = self._known_webhook_ids()
        fresh: list[dict[str, Any]] = []
        for index, write in enumerate(self.writes):
            context = self.contexts.get(write.submission_id) if write.submission_id else None
            prediction_id = write.prediction.id
            if context is not None and context.prediction_id not in (None, prediction_id):
                conflict = PredictionConflict(
                    f"submission {write.submission_id} is bound to prediction "
                    f"{context.prediction_id}, not {prediction_id}",
                    submission_id=write.submission_id,
                    recorded_prediction_id=context.prediction_id,
                )
                self.outcomes[index] = conflict
                if log_conflicts:
                    row = _delivery_row(write, "rejected", conflict.detail, conflict.status)
                    self.deliveries.append((index, row))
                continue
            webhook_id = write.webhook_id
            if webhook_id is not None:
                if webhook_id in known:
                    self.replays.append(index)
                    continue
                known.add(webhook_id)
                fresh.append(
                    {
                        "id": webhook_id,
                        "prediction_id": prediction_id,
                        "received_at": write.received_at,
                    }
                )
            if context is not None and context.prediction_id is None:
                # What linking this write will do; later writes in the batch must see it.
                self.contexts[write.submission_id or ""] = SubmissionContext(
                    prediction_id, context.domain, context.json_schema
                )
            self.pending.append(index)
        if fresh:
            self.connection.execute(self.statements.remember_webhook, fresh)

    def _known_webhook_ids(self) -> set[str]:
        """Standard Webhooks ids among this batch's that an earlier batch already accepted."""
        ids = sorted({w.webhook_id for w in self.writes if w.webhook_id is not None})
        if not ids:
            return set()
        rows = self.connection.execute(self.statements.known_webhooks, {"ids": ids})
        return {row.id for row in rows}

    def upsert(self) -> None:
        # A multi-row upsert may touch each id once (PostgreSQL refuses more), so repeated
        # ids go to later rounds, which keeps their arrival order.
        rounds: list[list[int]] = []
        occurrences: dict[str, int] = {}
        for index in self.pending:
            prediction_id = self.writes[index].prediction.id
            n = occurrences.get(prediction_id, 0)
            occurrences[prediction_id] = n + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append(index)
        for members in rounds:
            self._upsert_round(members)

    def _upsert_round(self, members: list[int]) -> None:
        rows = []
        for index in members:
            write = self.writes[index]
            context = self.contexts.get(write.submission_id) if write.submission_id else None
            schema_valid, schema_errors = check_response_schema(
                context.json_schema if context else None, write.prediction.response
            )
            self.values[index] = _prediction_values(write, context, schema_valid, schema_errors)
            rows.append(self.values[index])
        applied = {
            row.id: (row.delivery_count, row.received_at)
            for row in self.connection.execute(self.statements.upsert_prediction, rows)
        }
        unapplied = [i for i in members if self.writes[i].prediction.id not in applied]
        current = self._current([self.writes[i].prediction.id for i in unapplied])
        event_rows: list[dict[str, Any]] = []
        for index in members:
            write, values = self.writes[index], self.values[index]
            prediction_id = write.prediction.id
            if prediction_id in applied:
                # The row keeps its first received_at; the event must say what GET says.
                count, first_received_at = applied[prediction_id]
                status = values["status"]
                verdict: Verdict = "stored" if count == 1 else "updated"
                reason = None
                event_rows.append(
                    {
                        "prediction_id": prediction_id,
                        "type": f"prediction.{status}",
                        "data": public_prediction(
                            {**values, "delivery_count": count, "received_at": first_received_at}
                        ),
                        "created_at": write.received_at,
                    }
                )
                self.outcomes[index] = IngestOutcome(
                    prediction_id, status, verdict, None, values["schema_valid"]
                )
            else:
                status, body_sha256 = current[prediction_id]
                verdict = "duplicate" if body_sha256 == values["body_sha256"] else "stale"
                reason = (
                    "exact duplicate"
                    if verdict == "duplicate"
                    else f"{write.prediction.status.value} arrived after {status}; kept {status}"
                )
                self.outcomes[index] = IngestOutcome(prediction_id, status, verdict)
            self.deliveries.append((index, _delivery_row(write, verdict, reason, 200)))
            self._link(write, status, changed=prediction_id in applied)
        if event_rows:
            seqs = {
                row.prediction_id: row.seq
                for row in self.connection.execute(self.statements.insert_event, event_rows)
            }
            # Forwarding's outbox rows, in this same transaction (see vlmhooks/outbox.py).
            write_outbox_rows(self.connection, event_rows, seqs)
            for index in members:
                outcome = self.outcomes[index]
                if isinstance(outcome, IngestOutcome) and outcome.verdict in ("stored", "updated"):
                    self.outcomes[index] = replace(outcome, event_seq=seqs[outcome.prediction_id])

    def _link(self, write: PredictionWrite, status: str, *, changed: bool) -> None:
        """Record the submission's prediction id and status (only when it has a row)."""
        submission_id = write.submission_id
        if submission_id is None or submission_id not in self.contexts:
            return  # `vlm-receiver callback-url` URLs have no row to link
        # A write that changed nothing still binds a submission not yet linked, so a later
        # delivery with another id conflicts. Every write through one submission carries the
        # same prediction id (others conflict), so rounds keep their order here.
        if changed or submission_id not in self.linked:
            self.linked.add(submission_id)
            self.links[submission_id] = {
                "submission_id": submission_id,
                "linked_prediction_id": write.prediction.id,
                "new_status": status,
                "linked_at": write.received_at,
            }

    def _current(self, prediction_ids: list[str]) -> dict[str, tuple[str, str]]:
        if not prediction_ids:
            return {}
        rows = self.connection.execute(
            self.statements.currents, {"prediction_ids": sorted(set(prediction_ids))}
        )
        return {row.id: (row.status, row.body_sha256) for row in rows}

    def finish(self) -> None:
        if self.replays:
            current = self._current([self.writes[i].prediction.id for i in self.replays])
            for index in self.replays:
                write = self.writes[index]
                known = current.get(write.prediction.id)
                status = known[0] if known else write.prediction.status.value
                self.outcomes[index] = IngestOutcome(write.prediction.id, status, "duplicate")
                row = _delivery_row(write, "replay", "webhook-id already accepted", 200)
                self.deliveries.append((index, row))
        if self.links:
            self.connection.execute(self.statements.link_submission, list(self.links.values()))
        if self.deliveries:
            # In arrival order, so the audit log reads as the requests came in.
            rows = [row for _, row in sorted(self.deliveries, key=lambda item: item[0])]
            self.connection.execute(self.statements.insert_delivery, rows)

    def results(self) -> list[IngestOutcome | PredictionConflict]:
        done = [outcome for outcome in self.outcomes if outcome is not None]
        assert len(done) == len(self.writes), "every write gets an outcome"
        return done


def _delivery_row(
    write: PredictionWrite, verdict: DeliveryVerdict, reason: str | None, http_status: int
) -> dict[str, Any]:
    record = write.delivery
    return {
        "prediction_id": write.prediction.id,
        "submission_id": write.submission_id,
        "received_at": write.received_at,
        "verdict": verdict,
        "reason": None if reason is None else _printable(reason),
        "http_status": http_status,
        "source": write.source,
        "body_sha256": record.body_sha256,
        "headers": record.headers or None,
        "body": record.body,
        "body_truncated": record.body_truncated,
    }


def _prediction_values(
    write: PredictionWrite,
    context: SubmissionContext | None,
    schema_valid: bool | None,
    schema_errors: list[str] | None,
) -> dict[str, Any]:
    prediction = write.prediction
    extra = prediction.extra_fields
    domain = extra.get("domain")
    if not isinstance(domain, str) or len(domain) > DOMAIN_WIDTH:
        domain = None  # still kept verbatim among the unknown fields (`extra`)
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
        "body_sha256": write.content_sha256 or content_sha256(prediction.to_wire()),
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
    connection.execute(
        _statements(connection).insert_delivery,
        {
            "prediction_id": prediction_id,
            "submission_id": submission_id,
            "received_at": received_at,
            "verdict": "rejected",
            "reason": _printable(reason)[:2000],
            "http_status": http_status,
            "source": source,
            "body_sha256": delivery.body_sha256,
            "headers": delivery.headers or None,
            "body": delivery.body,
            "body_truncated": delivery.body_truncated,
        },
    )


def _printable(text: str) -> str:
    # A reason may quote sender input; PostgreSQL text cannot hold U+0000.
    return text.replace("\x00", "\\u0000")

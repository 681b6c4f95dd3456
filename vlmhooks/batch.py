"""Applying verified predictions to the database: upsert forward-only, log, emit an event.

Everything here runs inside a caller's transaction (the group committer's batch, or a
single `ingest_prediction`), so a 2xx is only ever sent for committed rows. The upsert is
one `INSERT ... ON CONFLICT DO UPDATE ... WHERE` so concurrent writers in several
processes cannot regress a status: the database, not the process, decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.engine import Connection

from schemas.enums import STATUS_RANK
from vlmhooks.audit import delivery_row
from vlmhooks.errors import PredictionConflict, WebhookIdConflict
from vlmhooks.outbox import write_outbox_rows
from vlmhooks.public import public_prediction
from vlmhooks.raw_sql import as_datetime
from vlmhooks.records import (
    DeliveryVerdict,
    IngestOutcome,
    PredictionWrite,
    Verdict,
)
from vlmhooks.schema_check import check_response_schema
from vlmhooks.statements import write_statements
from vlmhooks.storable import MAX_DOMAIN_CHARS, storable_content_hash

__all__ = [
    "apply_prediction_write",
    "apply_prediction_writes",
    "begin_write_batch",
    "end_write_batch",
]


def begin_write_batch(connection: Connection) -> None:
    """Open a write batch: on PostgreSQL, take the event-feed lock until commit."""
    statements = write_statements(connection)
    if statements.is_postgresql:
        connection.execute(statements.advisory_lock)


def end_write_batch(connection: Connection, wrote_events: bool) -> None:
    """Close a write batch: on PostgreSQL, queue the NOTIFY that wakes other processes."""
    statements = write_statements(connection)
    if wrote_events and statements.is_postgresql:
        # Delivered by PostgreSQL at commit, to every LISTENing receiver process.
        connection.execute(statements.notify)


@dataclass(frozen=True)
class _SubmissionContext:
    prediction_id: str | None
    domain: str | None
    json_schema: dict[str, Any] | None


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
        self.statements = write_statements(connection)
        self.writes = writes
        self.outcomes: list[IngestOutcome | PredictionConflict | None] = [None] * len(writes)
        self.pending: list[int] = []  # indexes still to upsert, in arrival order
        self.replays: list[int] = []
        self.before: dict[str, tuple[str, str]] = {}
        self.deliveries: list[tuple[int, dict[str, Any]]] = []
        self.links: dict[str, dict[str, Any]] = {}
        self.values: dict[int, dict[str, Any]] = {}
        self.contexts: dict[str, _SubmissionContext] = {}
        # Stored before without a submission (the submitter's reconcile): the first callback
        # URL accepted for it claims it, even when its write changes nothing.
        self.unowned: set[str] = set()
        self.claims: dict[str, str] = {}
        self.owners: dict[str, str] = {}
        self.bound: dict[str, str] = {}
        self._read_context()
        # Submissions whose prediction id is recorded, as linking proceeds in arrival order.
        self.linked = {sid for sid, ctx in self.contexts.items() if ctx.prediction_id is not None}

    def _read_context(self) -> None:
        """One query (one round trip) for what the batch must know before writing: the
        submission rows (schema, domain, recorded prediction id), and who owns what:
        prediction -> the submission that first stored it, callback URL (submission id) ->
        the prediction first stored through it.

        The prediction rows are the binding, so a URL minted by `vlm-receiver callback-url`
        (no submission row) binds exactly like one the submitter recorded; a recorded
        `submission.prediction_id` (known from the API's 201) binds before any callback.
        """
        submission_ids = sorted({w.submission_id for w in self.writes if w.submission_id})
        prediction_ids = sorted({w.prediction.id for w in self.writes})
        rows = self.connection.execute(
            self.statements.batch_context,
            {
                "submission_ids": submission_ids,
                "prediction_ids": prediction_ids,
                "owner_ids": submission_ids,
            },
        )
        for row in rows:
            if row.kind == "submission":
                self.contexts[row.id] = _SubmissionContext(row.link, row.domain, row.json_schema)
            elif row.link is not None:
                self.owners[row.id] = row.link
                self.bound.setdefault(row.link, row.id)
            else:
                self.unowned.add(row.id)
        for submission_id, context in self.contexts.items():
            if context.prediction_id is not None:
                self.bound[submission_id] = context.prediction_id

    def _conflict(self, write: PredictionWrite) -> PredictionConflict | None:
        """Why `write` contradicts a binding made earlier (this batch included), else None."""
        submission_id, prediction_id = write.submission_id, write.prediction.id
        if submission_id is None:
            return None  # the submitter's own reads (reconcile): no callback URL involved
        owner = self.owners.get(prediction_id)
        if owner is not None and owner != submission_id:
            return PredictionConflict(
                f"prediction {prediction_id} belongs to submission {owner}, not {submission_id}",
                submission_id=submission_id,
                recorded_submission_id=owner,
            )
        bound = self.bound.get(submission_id)
        if bound is not None and bound != prediction_id:
            return PredictionConflict(
                f"submission {submission_id} is bound to prediction {bound}, not {prediction_id}",
                submission_id=submission_id,
                recorded_prediction_id=bound,
            )
        return None

    def classify(self, log_conflicts: bool) -> None:
        """One pass in arrival order: conflict, replay, or to upsert (binding as it goes).

        Writers are serialized (SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory lock), so
        the bindings and webhook ids read here cannot change before this batch commits.
        """
        known = self._known_webhook_ids()
        fresh: list[dict[str, Any]] = []
        for index, write in enumerate(self.writes):
            prediction_id = write.prediction.id
            conflict = self._conflict(write)
            webhook_id = write.webhook_id
            if conflict is None and webhook_id is not None:
                first = known.get(webhook_id)
                if first is None:
                    known[webhook_id] = (prediction_id, write.delivery.body_sha256)
                    fresh.append(
                        {
                            "id": webhook_id,
                            "prediction_id": prediction_id,
                            "received_at": write.received_at,
                            "body_sha256": write.delivery.body_sha256,
                        }
                    )
                elif _same_message(first, prediction_id, write.delivery.body_sha256):
                    self.replays.append(index)
                    continue
                else:
                    # Standard Webhooks ids are idempotency keys: one id, one message. A
                    # different body under a used id is refused, never silently dropped.
                    conflict = WebhookIdConflict(
                        f"webhook-id {webhook_id} was already accepted with a different body",
                        webhook_id=webhook_id,
                    )
            if conflict is not None:
                self.outcomes[index] = conflict
                if log_conflicts:
                    row = _delivery_row_of(write, "rejected", conflict.detail, conflict.status)
                    self.deliveries.append((index, row))
                continue
            if write.submission_id is not None:
                # What storing this write will bind; later writes in the batch must see it.
                self.bound.setdefault(write.submission_id, prediction_id)
                self.owners.setdefault(prediction_id, write.submission_id)
                if prediction_id in self.unowned:
                    self.claims.setdefault(prediction_id, write.submission_id)
            elif prediction_id not in self.owners:
                self.unowned.add(prediction_id)  # it may be inserted without a submission
            self.pending.append(index)
        if fresh:
            self.connection.execute(self.statements.remember_webhook, fresh)
        if self.replays:
            # A replay is judged against what was stored when it arrived: the state before
            # this batch, or after the last write applied ahead of it (see `finish`).
            self.before = self._current([self.writes[i].prediction.id for i in self.replays])

    def _known_webhook_ids(self) -> dict[str, tuple[str | None, str | None]]:
        """Webhook ids of this batch an earlier batch accepted: (prediction id, body hash)."""
        ids = sorted({w.webhook_id for w in self.writes if w.webhook_id is not None})
        if not ids:
            return {}
        rows = self.connection.execute(self.statements.known_webhooks, {"ids": ids})
        return {row.id: (row.prediction_id, row.body_sha256) for row in rows}

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
            row_id: (count, as_datetime(received_at))
            for row_id, count, received_at in self.statements.raw_upsert_prediction.execute(
                self.connection, rows
            )
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
            self.deliveries.append((index, _delivery_row_of(write, verdict, reason, 200)))
            self._link(write, status, changed=prediction_id in applied)
        if event_rows:
            inserted = self.statements.raw_insert_event.execute(self.connection, event_rows)
            seqs = {prediction_id: seq for prediction_id, seq in inserted}
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
        for index in self.replays:
            write = self.writes[index]
            status, stored_hash = self._stored_at(index)
            # `duplicate` only when what is stored is this very content; a replay of a
            # message since superseded (or never applied) is `stale`, like its original.
            if stored_hash == _content_hash(write):
                verdict: Verdict = "duplicate"
                reason = "webhook-id already accepted"
            else:
                verdict = "stale"
                reason = f"webhook-id already accepted; superseded, kept {status}"
            self.outcomes[index] = IngestOutcome(write.prediction.id, status, verdict)
            self.deliveries.append((index, _delivery_row_of(write, "replay", reason, 200)))
        if self.claims:
            claims = [{"claimed_id": p, "claimant_id": s} for p, s in self.claims.items()]
            self.connection.execute(self.statements.claim_prediction, claims)
        if self.links:
            self.connection.execute(self.statements.link_submission, list(self.links.values()))
        if self.deliveries:
            # In arrival order, so the audit log reads as the requests came in.
            rows = [row for _, row in sorted(self.deliveries, key=lambda item: item[0])]
            self.statements.raw_insert_delivery.execute(self.connection, rows)

    def _stored_at(self, index: int) -> tuple[str, str | None]:
        """(status, content hash) of the replayed prediction as stored when `index` arrived."""
        prediction_id = self.writes[index].prediction.id
        for earlier in reversed(self.pending):
            outcome = self.outcomes[earlier]
            if (
                earlier < index
                and self.writes[earlier].prediction.id == prediction_id
                and isinstance(outcome, IngestOutcome)
                and outcome.verdict in ("stored", "updated")
            ):
                values = self.values[earlier]
                return values["status"], values["body_sha256"]
        before = self.before.get(prediction_id)
        if before is None:
            return self.writes[index].prediction.status.value, None
        return before

    def results(self) -> list[IngestOutcome | PredictionConflict]:
        done = [outcome for outcome in self.outcomes if outcome is not None]
        assert len(done) == len(self.writes), "every write gets an outcome"
        return done


def _same_message(
    first: tuple[str | None, str | None], prediction_id: str, body_sha256: str
) -> bool:
    first_prediction_id, first_body_sha256 = first
    if first_body_sha256 is None:
        # Accepted before revision 0002 recorded body hashes: the prediction id is all we have.
        return first_prediction_id == prediction_id
    return first_body_sha256 == body_sha256


def _content_hash(write: PredictionWrite) -> str:
    return write.content_sha256 or storable_content_hash(write.prediction)


def _delivery_row_of(
    write: PredictionWrite, verdict: DeliveryVerdict, reason: str | None, http_status: int
) -> dict[str, Any]:
    """The delivery row of `write`, through the delivery log's one builder."""
    return delivery_row(
        write.delivery,
        prediction_id=write.prediction.id,
        submission_id=write.submission_id,
        source=write.source,
        received_at=write.received_at,
        verdict=verdict,
        reason=reason,
        http_status=http_status,
    )


def _prediction_values(
    write: PredictionWrite,
    context: _SubmissionContext | None,
    schema_valid: bool | None,
    schema_errors: list[str] | None,
) -> dict[str, Any]:
    prediction = write.prediction
    extra = prediction.extra_fields
    domain = extra.get("domain")
    if not isinstance(domain, str) or len(domain) > MAX_DOMAIN_CHARS:
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
        "body_sha256": _content_hash(write),
        "schema_valid": schema_valid,
        "schema_errors": schema_errors,
    }

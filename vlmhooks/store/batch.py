"""Applying verified predictions to the database: upsert forward-only, log, emit an event.

Everything here runs inside a caller's transaction (the group committer's batch, or a
single `ingest_prediction`), so a 2xx is only ever sent for committed rows. The upsert is
one `INSERT ... ON CONFLICT DO UPDATE ... WHERE` so concurrent writers in several
processes cannot regress a status: the database, not the process, decides.

A batch runs in three phases (ARCHITECTURE.md, "The write batch"), so that the group
committer can put each where it costs least: on SQLite all three run on the event loop and
only the COMMIT waits in a thread; on PostgreSQL the writer thread runs them all:

- `read`: what the batch must know, in one statement (two with Standard Webhooks ids);
- `plan`: pure Python. Conflicts, replays, and the outcome of every write, decided by the
  upsert's own forward-only rule against the rows just read. Nothing the batch read can
  change before it commits: SQLite's BEGIN IMMEDIATE holds the one write lock; on
  PostgreSQL the read first locks the batch's own keys (its prediction, submission and
  webhook ids), so batches of other processes writing other rows run meanwhile. Every
  statement's parameters are rendered here;
- `write`: the statements, back to back, the event rows last: on PostgreSQL behind the
  event-feed lock, held from there to the COMMIT (ARCHITECTURE.md, "The write batch").
  The upsert's RETURNING is checked against the plan; any difference fails the batch,
  which the committer rolls back and replays one write at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from vlmhooks.errors import PredictionConflict
from vlmhooks.ingest.schema_check import check_response_schema
from vlmhooks.store.batch_context import REPLAY, BatchContext
from vlmhooks.store.batch_rows import (
    ROW_ALLOWANCE,
    StoredPrediction,
    advance,
    content_hash,
    delivery_bytes,
    delivery_row_of,
    event_row,
    prediction_values,
)
from vlmhooks.store.db import dumps_json_utf8
from vlmhooks.store.forward_only import moves_forward
from vlmhooks.store.outbox import write_outbox_rows
from vlmhooks.store.raw_sql import Prepared, as_datetime, run_all
from vlmhooks.store.records import IngestOutcome, PredictionWrite, Verdict
from vlmhooks.store.statements import (
    EventReturned,
    UpsertReturned,
    WriteStatements,
    statements_for,
    write_statements,
)

__all__ = [
    "BatchDiverged",
    "PredictionBatch",
    "apply_prediction_write",
    "apply_prediction_writes",
    "lock_event_feed",
    "prediction_batch",
]

Result = IngestOutcome | PredictionConflict


class BatchDiverged(RuntimeError):
    """The database applied the upsert differently from the plan: someone wrote without
    the write lock. The batch is rolled back (and replayed write by write)."""


def lock_event_feed(connection: Connection) -> None:
    """On PostgreSQL, take the event-feed lock until commit and queue the NOTIFY that
    wakes other processes: before inserting an event outside a batch (a batch does both
    itself, around its own event rows)."""
    statements = write_statements(connection)
    if statements.is_postgresql:
        run_all(connection, [statements.feed_lock, statements.notify])


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
) -> list[Result]:
    """Apply deliveries in arrival order, as if one by one, with a handful of statements.

    One statement per step for the whole batch (not per write) is what makes group commit
    pay. A conflict comes back as a value (and, with `log_conflicts`, as a rejected row).
    """
    batch = PredictionBatch(writes, dialect=connection.dialect.name, log_conflicts=log_conflicts)
    batch.read(connection)
    batch.plan()
    return batch.write(connection)


def prediction_batch(writes: list[PredictionWrite], dialect: str) -> PredictionBatch:
    """`apply_prediction_writes` in phases, for the group committer (`run_batched(phases=)`)."""
    return PredictionBatch(writes, dialect=dialect)


@dataclass(slots=True)
class _Round:
    """One upsert statement: a prediction id appears at most once (PostgreSQL's rule)."""

    members: list[int]
    upsert: Prepared
    applied: dict[str, tuple[int, datetime]]  # id -> (delivery_count, first received_at)
    events: list[dict[str, Any]]
    event_insert: Prepared | None


class PredictionBatch:
    """One batch of deliveries through `read`, `plan` and `write` (see the module doc)."""

    def __init__(
        self, writes: Sequence[PredictionWrite], *, dialect: str, log_conflicts: bool = True
    ) -> None:
        self.writes = writes
        self.statements: WriteStatements = statements_for(dialect)
        self.context = BatchContext(writes, self.statements)
        self.log_conflicts = log_conflicts
        self.outcomes: list[Result | None] = [None] * len(writes)
        self.rounds: list[_Round] = []
        self.links: dict[str, dict[str, Any]] = {}
        self.deliveries: list[tuple[int, dict[str, Any]]] = []
        self.tail: list[Prepared] = []
        self._payload_bytes = 0

    def read(self, connection: Connection) -> None:
        """What the batch must know to plan, in one round trip (vlmhooks/store/batch_context.py)."""
        self.context.read(connection)

    # -- plan ------------------------------------------------------------------------------

    def plan(self) -> None:
        """Decide every write's outcome and render every statement (no database access)."""
        context = self.context
        before = {pid: (s.status, s.body_sha256) for pid, s in context.stored.items()}
        # Submissions whose prediction id is recorded, as linking proceeds in arrival order.
        linked = {sid for sid, sub in context.submissions.items() if sub.prediction_id is not None}
        occurrences: dict[str, int] = {}
        round_members: list[list[int]] = []
        replays: list[int] = []
        for index, write in enumerate(self.writes):
            admitted = context.admit(write)
            if admitted is REPLAY:
                replays.append(index)
                continue
            if isinstance(admitted, PredictionConflict):
                self.outcomes[index] = admitted
                if self.log_conflicts:
                    row = delivery_row_of(write, "rejected", admitted.detail, admitted.status)
                    self.deliveries.append((index, row))
                continue
            n = occurrences.get(write.prediction.id, 0)
            occurrences[write.prediction.id] = n + 1
            if n == len(round_members):
                round_members.append([])
            round_members[n].append(index)
        # Each write's outcome against the state left by the writes before it; rounds keep
        # the arrival order of repeated ids, so this is arrival order for every id.
        values: dict[int, dict[str, Any]] = {}
        for members in round_members:
            self.rounds.append(self._plan_round(members, values, linked))
        for index in replays:
            self._plan_replay(index, values, before)
        self._render_tail()

    def _plan_round(
        self, members: list[int], values: dict[int, dict[str, Any]], linked: set[str]
    ) -> _Round:
        context = self.context
        rows: list[dict[str, Any]] = []
        applied: dict[str, tuple[int, datetime]] = {}
        events: list[dict[str, Any]] = []
        for index in members:
            write = self.writes[index]
            submission = (
                context.submissions.get(write.submission_id) if write.submission_id else None
            )
            schema_valid, schema_errors = check_response_schema(
                submission.json_schema if submission else None, write.prediction.response
            )
            response_json = dumps_json_utf8(write.prediction.response)
            row = prediction_values(write, submission, schema_valid, schema_errors, response_json)
            values[index] = row
            rows.append(row)
            # The prediction's JSON (response, usage, unknown fields) goes into its event,
            # and all of it but the response into its row.
            size = len(response_json) if write.content_bytes is None else write.content_bytes
            self._payload_bytes += 2 * (size + ROW_ALLOWANCE) - len(response_json)
            prediction_id, status = row["id"], row["status"]
            stored = context.stored.get(prediction_id)
            if stored is None or moves_forward(
                stored.rank, stored.body_sha256, row["status_rank"], row["body_sha256"]
            ):
                # What the upsert will do, by the same rule (vlmhooks/store/forward_only.py).
                if stored is None:
                    stored = context.stored[prediction_id] = StoredPrediction(
                        status,
                        row["status_rank"],
                        row["body_sha256"],
                        1,
                        write.received_at,
                        row["submission_id"],
                        row["domain"],
                    )
                else:
                    advance(stored, row)
                count, first_received_at = stored.delivery_count, stored.received_at
                applied[prediction_id] = (count, first_received_at)
                verdict: Verdict = "stored" if count == 1 else "updated"
                reason = None
                events.append(event_row(row, stored))
                self.outcomes[index] = IngestOutcome(
                    prediction_id, status, verdict, None, row["schema_valid"]
                )
                changed = True
            else:
                verdict = "duplicate" if stored.body_sha256 == row["body_sha256"] else "stale"
                reason = (
                    "exact duplicate"
                    if verdict == "duplicate"
                    else f"{write.prediction.status.value} arrived after {stored.status}; "
                    f"kept {stored.status}"
                )
                self.outcomes[index] = IngestOutcome(prediction_id, stored.status, verdict)
                changed = False
            self.deliveries.append((index, delivery_row_of(write, verdict, reason, 200)))
            self._link(write, context.stored[prediction_id].status, changed, linked)
        statements = self.statements
        return _Round(
            members,
            statements.raw_upsert_prediction.prepare(rows),
            applied,
            events,
            statements.raw_insert_event.prepare(events) if events else None,
        )

    def _link(self, write: PredictionWrite, status: str, changed: bool, linked: set[str]) -> None:
        """Record the submission's prediction id and status (only when it has a row)."""
        submission_id = write.submission_id
        if submission_id is None or submission_id not in self.context.submissions:
            return  # `vlm-receiver callback-url` URLs have no row to link
        # A write that changed nothing still binds a submission not yet linked, so a later
        # delivery with another id conflicts. Every write through one submission carries the
        # same prediction id (others conflict), so arrival order holds here.
        if changed or submission_id not in linked:
            linked.add(submission_id)
            self.links[submission_id] = {
                "submission_id": submission_id,
                "linked_prediction_id": write.prediction.id,
                "new_status": status,
                "linked_at": write.received_at,
            }

    def _plan_replay(
        self, index: int, values: dict[int, dict[str, Any]], before: dict[str, tuple[str, str]]
    ) -> None:
        """A replayed webhook-id, judged against what was stored when it arrived."""
        write = self.writes[index]
        status, stored_hash = _stored_when(index, self.writes, self.outcomes, values, before)
        # `duplicate` only when what is stored is this very content; a replay of a message
        # since superseded (or never applied) is `stale`, like its original.
        if stored_hash == content_hash(write):
            verdict: Verdict = "duplicate"
            reason = "webhook-id already accepted"
        else:
            verdict = "stale"
            reason = f"webhook-id already accepted; superseded, kept {status}"
        self.outcomes[index] = IngestOutcome(write.prediction.id, status, verdict)
        self.deliveries.append((index, delivery_row_of(write, "replay", reason, 200)))

    def _render_tail(self) -> None:
        """Claims, links and the delivery log: statements whose results nobody reads."""
        statements = self.statements
        if self.context.claims:
            claims = [{"claimed_id": p, "claimant_id": s} for p, s in self.context.claims.items()]
            self.tail.append(statements.raw_claim_prediction.prepare_many(claims))
        if self.links:
            self.tail.append(statements.raw_link_submission.prepare_many(list(self.links.values())))
        if self.deliveries:
            # In arrival order, so the audit log reads as the requests came in.
            rows = [row for _, row in sorted(self.deliveries, key=lambda item: item[0])]
            self._payload_bytes += sum([delivery_bytes(row) for row in rows])
            self.tail.append(statements.raw_insert_delivery.prepare(rows))

    @property
    def payload_bytes(self) -> int:
        """What the planned statements carry, near enough: each stored body, each
        prediction's JSON in its event (`content_bytes`, else the response alone) and again
        in its row but for the response, and `ROW_ALLOWANCE` per row.
        Counted while planning, from values already at hand: only the SQLite writer asks,
        to keep a batch of large bodies off the event loop, and a scan of every parameter
        cost more than it is worth per write (bench/README.md, "Issue 13, seventh pass")."""
        return self._payload_bytes

    def _planned(self) -> tuple[list[Prepared], int]:
        """Every planned statement, in the order `write` runs them, and where the event
        rows start. The event rows come last: on PostgreSQL behind the event-feed lock,
        so the lock is held only from there to the COMMIT, and with the NOTIFY."""
        statements = [*(planned.upsert for planned in self.rounds), *self.tail]
        events = [planned.event_insert for planned in self.rounds if planned.event_insert]
        feed = bool(events) and self.statements.is_postgresql
        if feed:
            statements.append(self.statements.feed_lock)
        start = len(statements)
        statements += events
        if feed:
            statements.append(self.statements.notify)
        return statements, start

    # -- write -----------------------------------------------------------------------------

    def write(self, connection: Connection) -> list[Result]:
        """Run the planned statements; every write's outcome once they all have run."""
        context = self.context
        if context.fresh_webhooks:
            connection.execute(self.statements.remember_webhook, context.fresh_webhooks)
        # Every statement at once (one round trip on PostgreSQL): the plan needs no result
        # to write the next one; the results are checked afterwards.
        statements, events_start = self._planned()
        results = run_all(connection, statements)
        for planned, returned in zip(self.rounds, results, strict=False):
            applied = {
                row.id: (row.delivery_count, as_datetime(row.received_at))
                for row in map(UpsertReturned._make, returned)
            }
            if applied != planned.applied:
                raise BatchDiverged(
                    f"the upsert applied {sorted(applied)}, the plan {sorted(planned.applied)}"
                )
        with_events = [planned for planned in self.rounds if planned.event_insert]
        for planned, inserted in zip(with_events, results[events_start:], strict=False):
            feed = [EventReturned._make(row) for row in inserted]
            seqs = {row.prediction_id: row.seq for row in feed}
            if context.routes:
                # Forwarding's outbox rows, in this same transaction (see vlmhooks/store/outbox.py).
                keys = {row.prediction_id: row.prediction_key for row in feed}
                write_outbox_rows(connection, planned.events, seqs, keys, context.routes)
            for index in planned.members:
                outcome = self.outcomes[index]
                if isinstance(outcome, IngestOutcome) and outcome.verdict in ("stored", "updated"):
                    # Built, not `dataclasses.replace`d: that walks the fields, per write.
                    self.outcomes[index] = IngestOutcome(
                        outcome.prediction_id,
                        outcome.status,
                        outcome.verdict,
                        seqs[outcome.prediction_id],
                        outcome.schema_valid,
                    )
        done = [outcome for outcome in self.outcomes if outcome is not None]
        assert len(done) == len(self.writes), "every write gets an outcome"
        return done


def _stored_when(
    index: int,
    writes: Sequence[PredictionWrite],
    outcomes: list[Result | None],
    values: dict[int, dict[str, Any]],
    before: dict[str, tuple[str, str]],
) -> tuple[str, str | None]:
    """(status, content hash) of the prediction of `writes[index]` as stored when it arrived:
    after the last write applied ahead of it, else as the batch found it."""
    prediction_id = writes[index].prediction.id
    for earlier in range(index - 1, -1, -1):
        outcome = outcomes[earlier]
        if (
            writes[earlier].prediction.id == prediction_id
            and isinstance(outcome, IngestOutcome)
            and outcome.verdict in ("stored", "updated")
            and earlier in values
        ):
            return values[earlier]["status"], values[earlier]["body_sha256"]
    found = before.get(prediction_id)
    if found is None:
        return writes[index].prediction.status.value, None
    return found

"""What a write batch reads before it plans, and the bindings its writes make as they go.

The first phase of a batch (vlmhooks/store/batch.py; ARCHITECTURE.md, "The write batch"):
one round trip for the submission and prediction rows the batch names, the active
forwarding destinations and, with Standard Webhooks ids, the ids already accepted. Then,
write by write in arrival order, whether it conflicts with a binding, replays a webhook id,
or is to be upserted, binding as it goes so later writes of the batch see it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy.engine import Connection

from vlmhooks.errors import PredictionConflict, WebhookIdConflict
from vlmhooks.store.batch_rows import StoredPrediction, SubmissionContext, same_message
from vlmhooks.store.outbox import OUTBOX_ROUTES, OutboxRoute, outbox_routes
from vlmhooks.store.raw_sql import as_datetime, as_json, run_all
from vlmhooks.store.records import PredictionWrite
from vlmhooks.store.statements import ContextRow, WriteStatements

__all__ = ["REPLAY", "UPSERT", "BatchContext"]

# What `BatchContext.admit` makes of a write that does not conflict.
REPLAY: Final = "replay"
UPSERT: Final = "upsert"


class BatchContext:
    """The rows a batch read, and who owns what as its writes are admitted in order."""

    def __init__(self, writes: Sequence[PredictionWrite], statements: WriteStatements) -> None:
        self.writes = writes
        self.statements = statements
        self.submissions: dict[str, SubmissionContext] = {}
        self.stored: dict[str, StoredPrediction] = {}
        self.owners: dict[str, str] = {}  # prediction id -> the submission that stored it
        self.bound: dict[str, str] = {}  # submission id -> the prediction it stored
        # Stored before without a submission (the submitter's reconcile): the first callback
        # URL accepted for it claims it, even when its write changes nothing.
        self.unowned: set[str] = set()
        self.known_webhooks: dict[str, tuple[str | None, str | None]] = {}
        self.routes: list[OutboxRoute] = []
        self.fresh_webhooks: list[dict[str, Any]] = []
        self.claims: dict[str, str] = {}  # prediction id -> the submission claiming it

    def read(self, connection: Connection) -> None:
        """One round trip for the batch's context: submission rows (schema, domain, recorded
        prediction id) and prediction rows (current state, and who owns what: the
        submission that first stored each prediction, the prediction each URL stored).

        The prediction rows are the binding, so a URL minted by `vlm-receiver callback-url`
        (no submission row) binds exactly like one the submitter recorded; a recorded
        `submission.prediction_id` (known from the API's 201) binds before any callback.
        """
        writes, statements = self.writes, self.statements
        submission_ids = sorted({w.submission_id for w in writes if w.submission_id})
        prediction_ids = sorted({w.prediction.id for w in writes})
        webhook_ids = sorted({w.webhook_id for w in writes if w.webhook_id is not None})
        reads = [statements.batch_context(submission_ids, prediction_ids), OUTBOX_ROUTES]
        if statements.is_postgresql:
            # Every row this batch reads to plan, locked (in the same round trip) before it
            # is read: batches of other processes touching none of them run meanwhile.
            keys = [f"p:{p}" for p in prediction_ids] + [f"s:{s}" for s in submission_ids]
            reads.insert(0, statements.key_locks(keys + [f"w:{w}" for w in webhook_ids]))
        *_locked, context_rows, route_rows = run_all(connection, reads)
        self.routes = outbox_routes(route_rows)
        for row in map(ContextRow._make, context_rows):
            row_id, link = row.id, row.link
            if row.kind == "s":
                self.submissions[row_id] = SubmissionContext(
                    link, row.domain, as_json(row.json_schema)
                )
                continue
            if link is not None:
                self.owners[row_id] = link
                self.bound.setdefault(link, row_id)
            else:
                self.unowned.add(row_id)
            self.stored[row_id] = StoredPrediction(
                row.status,
                row.status_rank,
                row.body_sha256,
                row.delivery_count,
                as_datetime(row.received_at),
                link,
                row.domain,
            )
        for submission_id, submission in self.submissions.items():
            if submission.prediction_id is not None:
                self.bound[submission_id] = submission.prediction_id
        if webhook_ids:
            rows = connection.execute(statements.known_webhooks, {"ids": webhook_ids})
            self.known_webhooks = {r.id: (r.prediction_id, r.body_sha256) for r in rows}

    def admit(self, write: PredictionWrite) -> PredictionConflict | str:
        """The conflict `write` makes, else `REPLAY` (a webhook id already accepted with
        this message) or `UPSERT`, binding what storing it will bind."""
        prediction_id = write.prediction.id
        conflict = self.conflict(write)
        webhook_id = write.webhook_id
        if conflict is None and webhook_id is not None:
            first = self.known_webhooks.get(webhook_id)
            body_sha256 = write.delivery.body_sha256
            if first is None:
                self.known_webhooks[webhook_id] = (prediction_id, body_sha256)
                self.fresh_webhooks.append(
                    {
                        "id": webhook_id,
                        "prediction_id": prediction_id,
                        "received_at": write.received_at,
                        "body_sha256": body_sha256,
                    }
                )
            elif same_message(first, prediction_id, body_sha256):
                return REPLAY
            else:
                # Standard Webhooks ids are idempotency keys: one id, one message. A
                # different body under a used id is refused, never silently dropped.
                conflict = WebhookIdConflict(
                    f"webhook-id {webhook_id} was already accepted with a different body",
                    webhook_id=webhook_id,
                )
        if conflict is not None:
            return conflict
        if write.submission_id is not None:
            # What storing this write will bind; later writes in the batch must see it.
            self.bound.setdefault(write.submission_id, prediction_id)
            self.owners.setdefault(prediction_id, write.submission_id)
            if prediction_id in self.unowned:
                self.claims.setdefault(prediction_id, write.submission_id)
        elif prediction_id not in self.owners:
            self.unowned.add(prediction_id)  # it may be inserted without a submission
        return UPSERT

    def conflict(self, write: PredictionWrite) -> PredictionConflict | None:
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

"""The SQLModel tables: what we sent (Submission), what we hold (Prediction), every
callback received (Delivery), the change feed behind SSE (PredictionEvent), the
Standard Webhooks ids already seen (WebhookMessage), and forwarding's destination registry
(ForwardDestination) and transactional outbox (ForwardOutbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from schemas.contract import utc_now

# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTCDateTime = sa.DateTime(timezone=True)


def _json_column(nullable: bool = True) -> Any:
    return sa.Column(JSONType, nullable=nullable)


def _time_column(nullable: bool = False, index: bool = False) -> Any:
    return sa.Column(UTCDateTime, nullable=nullable, index=index)


class Submission(SQLModel, table=True):
    """One request we sent to the API, keyed by our own id (carried in the callback token)."""

    __tablename__ = "submission"
    __table_args__ = (
        sa.Index("ix_submission_prediction_id", "prediction_id"),
        sa.Index("ix_submission_status_created_at", "status", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=64)
    request_id: str = Field(max_length=128)
    domain: str = Field(max_length=64)
    prompt: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, sa_column=_json_column())
    callback_url: str | None = None
    batch: bool = True
    image_count: int = 0
    prediction_id: str | None = Field(default=None, max_length=128)
    status: str | None = Field(default=None, max_length=16)
    error: str | None = None
    created_at: datetime = Field(default_factory=utc_now, sa_column=_time_column())
    sent_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    updated_at: datetime = Field(default_factory=utc_now, sa_column=_time_column())
    # The W3C trace context (`traceparent`, `tracestate`) of the span that submitted it, when
    # tracing is on: the callback's span links to it (vlmhooks/tracing.py).
    trace_context: dict[str, str] | None = Field(default=None, sa_column=_json_column())


class Prediction(SQLModel, table=True):
    """The newest state of one prediction; status only moves forward (see schemas.enums)."""

    __tablename__ = "prediction"
    __table_args__ = (
        sa.Index("ix_prediction_status_created_at", "status", "created_at"),
        sa.Index("ix_prediction_created_at_id", "created_at", "id"),
        sa.Index("ix_prediction_domain_created_at", "domain", "created_at"),
        sa.Index("ix_prediction_submission_id", "submission_id"),
        sa.UniqueConstraint("id", name="uq_prediction_id"),
    )

    # The integer surrogate the change feed and the delivery log are keyed by: it grows
    # with each new prediction, so their per-prediction indexes grow at their end, where
    # the random text id would land each row on a random page (ARCHITECTURE.md, "The delivery
    # log and the event feed keyed by the prediction's row_key"). SQLite's rowid (INTEGER
    # PRIMARY KEY), PostgreSQL's BIGINT from a sequence.
    row_key: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True))
    id: str = Field(max_length=128)
    # Deliberately no foreign key: a callback may arrive for a submission another
    # client sent (no row yet); it is linked by id and joins once the row exists.
    submission_id: str | None = Field(default=None, max_length=64)
    domain: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=16)
    status_rank: int
    # NULL: the response is stored once, in the event of the write that set it; read the
    # row through `PREDICTION_READ` (ARCHITECTURE.md, "The response, stored once"). Rows
    # written before that hold it here until their next change.
    response: Any = Field(default=None, sa_column=_json_column())
    usage: dict[str, Any] | None = Field(default=None, sa_column=_json_column())
    # Unknown fields of the payload, kept so the API's shape round-trips.
    extra: dict[str, Any] | None = Field(default=None, sa_column=_json_column())
    created_at: datetime = Field(sa_column=_time_column())
    completed_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    received_at: datetime = Field(sa_column=_time_column())
    updated_at: datetime = Field(sa_column=_time_column())
    delivery_count: int = 1
    source: str = Field(default="callback", max_length=16)
    body_sha256: str = Field(max_length=64)
    schema_valid: bool | None = None
    schema_errors: list[str] | None = Field(default=None, sa_column=_json_column())


class Delivery(SQLModel, table=True):
    """One callback that passed the token check, accepted or not, for audit and replay."""

    __tablename__ = "delivery"
    __table_args__ = (
        sa.Index("ix_delivery_prediction_key", "prediction_key"),
        # Only the deliveries no prediction row keys: refusals of a prediction never stored,
        # and those whose row was deleted (a trigger unkeys them; migration 0006).
        sa.Index(
            "ix_delivery_unkeyed_prediction_id",
            "prediction_id",
            sqlite_where=sa.text("prediction_key IS NULL"),
            postgresql_where=sa.text("prediction_key IS NULL"),
        ),
        sa.Index("ix_delivery_submission_id", "submission_id"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True))
    # The row_key of its prediction when that had a row as the delivery was logged, else
    # NULL: the log's per-prediction index grows at its end, as the event feed's does
    # (ARCHITECTURE.md, "The delivery log and the event feed keyed by the prediction's row_key").
    prediction_key: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    prediction_id: str | None = Field(default=None, max_length=128)
    submission_id: str | None = Field(default=None, max_length=64)
    received_at: datetime = Field(sa_column=_time_column())
    verdict: str = Field(max_length=16)
    reason: str | None = None
    http_status: int
    source: str = Field(default="callback", max_length=16)
    body_sha256: str = Field(max_length=64)
    headers: dict[str, str] | None = Field(default=None, sa_column=_json_column())
    body: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary, nullable=True))
    body_truncated: bool = False


class PredictionEvent(SQLModel, table=True):
    """The change feed: `seq` is the SSE event id, assigned in commit order."""

    __tablename__ = "prediction_event"
    # With seq: a prediction's newest event (its response, `PREDICTION_READ`) is the last
    # entry of its range, which PostgreSQL then finds by this index whatever its statistics
    # say; on the key alone it may walk the feed backward from its newest row instead.
    __table_args__ = (sa.Index("ix_prediction_event_prediction_key_seq", "prediction_key", "seq"),)

    seq: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True))
    # Always set (an event follows its prediction's upsert); nullable only so that the
    # migration adds it without rebuilding the table.
    prediction_key: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    prediction_id: str = Field(max_length=128)  # as stored, for readers of the feed
    type: str = Field(max_length=32)
    data: dict[str, Any] = Field(sa_column=_json_column(nullable=False))
    created_at: datetime = Field(sa_column=_time_column())


class WebhookMessage(SQLModel, table=True):
    """Standard Webhooks `webhook-id`s already accepted, so a replay is not stored twice."""

    __tablename__ = "webhook_message"

    id: str = Field(primary_key=True, max_length=256)
    prediction_id: str | None = Field(default=None, max_length=128)
    received_at: datetime = Field(sa_column=_time_column(index=True))
    # The raw body first accepted under this id: the same id with another body is refused.
    body_sha256: str | None = Field(default=None, max_length=64)


class ForwardDestination(SQLModel, table=True):
    """A destination some process was configured with (`VLMHOOKS_FORWARD_TO`), never its
    credentials: the write path reads the active ones, so every writer fans out alike."""

    __tablename__ = "forward_destination"

    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=8)
    target: str  # the URL with credentials masked
    events: list[str] | None = Field(default=None, sa_column=_json_column())
    domain: str | None = Field(default=None, max_length=128)  # an fnmatch pattern
    active: bool = True
    disabled_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    disabled_reason: str | None = None
    last_error: str | None = None
    last_error_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    last_delivered_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    updated_at: datetime = Field(sa_column=_time_column())


class ForwardOutbox(SQLModel, table=True):
    """One stored change still to deliver to one destination (pending) or given up on (dead).

    Written in the change's own transaction; deleted once the destination acknowledges.
    The payload is the change's event row (`event_seq`), not a copy of it.
    """

    __tablename__ = "forward_outbox"
    __table_args__ = (
        sa.Index("ix_forward_outbox_destination_state_id", "destination_id", "state", "id"),
        # Per prediction by its row's key, which grows with each new prediction: keyed by
        # the random text id, a backlog's inserts and deletes each landed on a random page.
        sa.Index(
            "ix_forward_outbox_destination_prediction_key",
            "destination_id",
            "prediction_key",
            "id",
        ),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True))
    destination_id: str = Field(max_length=64)
    message_id: str = Field(max_length=64)
    event_seq: int = Field(
        sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("prediction_event.seq"), nullable=False)
    )
    # Its prediction's row_key: a change is held back while an earlier one of the same
    # prediction is pending here. Always set (nullable only so that migration 0007 adds it
    # without rebuilding the table).
    prediction_key: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    prediction_id: str = Field(max_length=128)
    type: str = Field(max_length=32)
    state: str = Field(default="pending", max_length=8)
    attempts: int = 0
    created_at: datetime = Field(sa_column=_time_column())
    next_attempt_at: datetime = Field(sa_column=_time_column())
    lease_until: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    lease_owner: str | None = Field(default=None, max_length=64)
    last_error: str | None = None
    dead_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))


TABLES = (
    Submission,
    Prediction,
    Delivery,
    PredictionEvent,
    WebhookMessage,
    ForwardDestination,
    ForwardOutbox,
)

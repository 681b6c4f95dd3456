"""The Core table of each SQLModel table class, typed, for statements built with SQLAlchemy Core."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

from schemas.tables import (
    Delivery,
    JSONType,
    Prediction,
    PredictionEvent,
    Submission,
    WebhookMessage,
)

__all__ = [
    "DELIVERY",
    "EVENT",
    "PREDICTION",
    "PREDICTION_READ",
    "PREDICTION_RESPONSE",
    "SUBMISSION",
    "WEBHOOK_MESSAGE",
    "column_names",
    "deliveries_of_prediction",
    "events_of_prediction",
    "prediction_key_of",
    "table_of",
]


def table_of(model: type[SQLModel]) -> sa.Table:
    """`model.__table__`, which SQLModel sets at class creation but does not declare."""
    table = sa.inspect(model).local_table
    if not isinstance(table, sa.Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table


def column_names(table: sa.Table, *names: str) -> tuple[str, ...]:
    """`names`, each checked against `table`'s declaration: a statement naming a column the
    table does not declare fails at import, not on its first batch."""
    return tuple(table.c[name].name for name in names)


PREDICTION = table_of(Prediction)
DELIVERY = table_of(Delivery)
EVENT = table_of(PredictionEvent)
SUBMISSION = table_of(Submission)
WEBHOOK_MESSAGE = table_of(WebhookMessage)


def prediction_key_of(prediction_id: str | sa.BindParameter[str]) -> sa.ScalarSelect[int]:
    """The row_key of the prediction `prediction_id`, NULL when it has no row: the delivery
    log and the event feed are keyed by it (schemas/tables.py)."""
    return sa.select(PREDICTION.c.row_key).where(PREDICTION.c.id == prediction_id).scalar_subquery()


def deliveries_of_prediction(prediction_id: str) -> sa.ColumnElement[bool]:
    """The delivery log's rows of one prediction: those keyed by its row, and those logged
    while it had none (each side has its own index: ARCHITECTURE.md, "The delivery log and
    the event feed keyed by the prediction's row_key")."""
    return sa.or_(
        DELIVERY.c.prediction_key == prediction_key_of(prediction_id),
        sa.and_(DELIVERY.c.prediction_key.is_(None), DELIVERY.c.prediction_id == prediction_id),
    )


def events_of_prediction(prediction_id: str) -> sa.ColumnElement[bool]:
    """The event rows of one prediction, through its row's key."""
    return EVENT.c.prediction_key == prediction_key_of(prediction_id)


# The prediction's response as GET shows it. A write stores it once, in the event it writes
# (whose data is the whole body GET shows), and leaves the row's column NULL; rows written
# before that hold it inline, and keep it until their next change. Every applied upsert
# writes its event in the same transaction, so the newest event of a row always holds the
# row's response (ARCHITECTURE.md, "The response, stored once"). `->` is JSON's member
# operator on both databases (SQLite 3.38+ reads a bare label as `$.label`) and returns
# JSON, so a string response stays a string and `null` stays `null`.
_NEWEST_EVENT_RESPONSE = (
    sa.select(EVENT.c.data.op("->", return_type=JSONType)(sa.literal_column("'response'")))
    .where(EVENT.c.prediction_key == PREDICTION.c.row_key)
    .order_by(EVENT.c.seq.desc())
    .limit(1)
    .correlate(PREDICTION)
    .scalar_subquery()
)
PREDICTION_RESPONSE = sa.func.coalesce(
    PREDICTION.c.response, _NEWEST_EVENT_RESPONSE, type_=JSONType
).label(PREDICTION.c.response.name)
PREDICTION_READ: tuple[sa.ColumnElement[object], ...] = tuple(
    PREDICTION_RESPONSE if column is PREDICTION.c.response else column for column in PREDICTION.c
)
"""A prediction row's columns as readers select them: every column, the response as above."""

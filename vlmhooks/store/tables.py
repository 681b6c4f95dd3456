"""The Core table of each SQLModel table class, typed, for statements built with SQLAlchemy Core."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

from schemas.tables import Delivery, Prediction, PredictionEvent, Submission, WebhookMessage

__all__ = [
    "DELIVERY",
    "EVENT",
    "PREDICTION",
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

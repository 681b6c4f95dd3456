"""The API's own read shape: a stored prediction as `GET /v1/predictions/{id}` returns it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import RowMapping

from schemas.contract import as_utc
from schemas.enums import TERMINAL_STATUSES, Status

__all__ = ["iso_utc", "public_prediction"]


def iso_utc(value: datetime | None) -> str | None:
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
            "created_at": iso_utc(row["created_at"]),
            "completed_at": iso_utc(row["completed_at"]),
            "response": row["response"],
            "status": row["status"],
        }
    )
    if row["domain"] is not None:
        body.setdefault("domain", row["domain"])
    body["vlmhooks"] = {
        "submission_id": row["submission_id"],
        "received_at": iso_utc(row["received_at"]),
        "updated_at": iso_utc(row["updated_at"]),
        "delivery_count": row["delivery_count"],
        "source": row["source"],
        "schema_valid": row["schema_valid"],
        "schema_errors": row["schema_errors"],
        "terminal": Status(row["status"]) in TERMINAL_STATUSES,
    }
    return body

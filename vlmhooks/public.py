"""The API's own read shape: a stored prediction as `GET /v1/predictions/{id}` returns it.

`Prediction` describes the body once (the OpenAPI document is generated from it);
`public_prediction` builds that body as a plain dict, because list pages build many.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any, overload

from pydantic import ConfigDict, Field, GetPydanticSchema, WithJsonSchema, with_config
from sqlalchemy.engine import RowMapping
from typing_extensions import TypedDict

from schemas.contract import PredictionResponse, Usage, as_utc
from schemas.enums import TERMINAL_STATUSES, Status

__all__ = [
    "Prediction",
    "PredictionBody",
    "UtcTimestamp",
    "VlmhooksFields",
    "iso_utc",
    "public_prediction",
]

# What `iso_utc` returns: the wire carries text, the document says which text.
UtcTimestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


@overload
def iso_utc(value: datetime) -> str: ...
@overload
def iso_utc(value: None) -> None: ...
@overload
def iso_utc(value: datetime | None) -> str | None: ...
def iso_utc(value: datetime | None) -> str | None:
    return None if value is None else _iso_utc_text(value)


@functools.lru_cache(maxsize=1024)
def _iso_utc_text(value: datetime) -> str:
    # Cached: a stored write's event repeats its receive time, and a batch shares instants.
    # Equal instants give equal text, whatever their tzinfo, so the cache cannot mix them.
    return as_utc(value).isoformat().replace("+00:00", "Z")


@with_config(ConfigDict(extra="forbid", use_attribute_docstrings=True))
class VlmhooksFields(TypedDict):
    """The receiver's fields, under one key so they cannot clash with the API's."""

    submission_id: str | None
    received_at: UtcTimestamp
    """When the first delivery was stored."""
    updated_at: UtcTimestamp
    """When the last change was stored."""
    delivery_count: Annotated[int, Field(ge=1)]
    """Deliveries that changed this prediction (the first one and each forward move). Exact
    duplicates and stale deliveries change nothing, so they are not counted here; every
    delivery is in GET /v1/deliveries."""
    source: str
    """callback, fetch, poll, ..."""
    schema_valid: bool | None
    schema_errors: list[str] | None
    terminal: bool
    """The status is completed or failed."""


class Prediction(PredictionResponse):
    """The API's own `PredictionResponse` plus the receiver's fields under `vlmhooks`.

    Unknown fields the API sent (e.g. `domain`) are kept at the top level; `domain` is
    filled in from the submission when the API sent none.
    """

    # Every contract field is always present in a read, defaults included. Only the document
    # and the tests need the model itself, so it is not built at import.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True, defer_build=True)

    usage: Usage = Field(default_factory=Usage)
    """Always an object (`{}` when the API sent none): the public SDK requires one."""
    vlmhooks: VlmhooksFields


# A built body is a plain dict (cheap for pages of them); its schema is `Prediction`'s.
PredictionBody = Annotated[
    dict[str, Any], GetPydanticSchema(lambda _source, handler: handler(Prediction))
]


def public_prediction(row: RowMapping | dict[str, Any]) -> PredictionBody:
    """A Prediction row as a `Prediction` body.

    Unknown fields the API sent are restored at the top level; our own fields live under
    the single `vlmhooks` key so they can never clash with the API's.
    """
    body: PredictionBody = dict(row["extra"] or {})
    body.update(
        {
            # The API always sends usage and its SDK refuses a null; a callback may omit it.
            "usage": row["usage"] if row["usage"] is not None else {},
            "id": row["id"],
            "created_at": iso_utc(row["created_at"]),
            "completed_at": iso_utc(row["completed_at"]),
            "response": row["response"],
            "status": row["status"],
        }
    )
    if row["domain"] is not None:
        body.setdefault("domain", row["domain"])
    vlmhooks: VlmhooksFields = {
        "submission_id": row["submission_id"],
        "received_at": iso_utc(row["received_at"]),
        "updated_at": iso_utc(row["updated_at"]),
        "delivery_count": row["delivery_count"],
        "source": row["source"],
        "schema_valid": row["schema_valid"],
        "schema_errors": row["schema_errors"],
        "terminal": Status(row["status"]) in TERMINAL_STATUSES,
    }
    body["vlmhooks"] = vlmhooks
    return body

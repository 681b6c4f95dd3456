"""The audit read shapes `vlmhooks.reads.queries` builds: a delivery and a submission, as types.

They are plain dicts at run time; the OpenAPI document is generated from these types.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

from vlmhooks.public import PredictionBody, UtcTimestamp
from vlmhooks.store.records import DeliveryVerdict

__all__ = ["SUBMISSION_DELIVERY_HISTORY", "BodyEncoding", "Delivery", "Submission"]

SUBMISSION_DELIVERY_HISTORY = 100

BodyEncoding = Literal["utf-8", "base64"]


@with_config(ConfigDict(extra="forbid", use_attribute_docstrings=True))
class Delivery(TypedDict):
    """One callback as it arrived, whatever became of it."""

    id: int
    prediction_id: str | None
    submission_id: str | None
    received_at: UtcTimestamp
    verdict: DeliveryVerdict
    reason: str | None
    http_status: int
    source: str
    body_sha256: str
    headers: dict[str, str] | None
    body_size: Annotated[int, Field(ge=0)] | None
    body_truncated: bool
    body: NotRequired[str | None]
    """Only with `include_body=true`: the stored (capped) raw body."""
    body_encoding: NotRequired[BodyEncoding | None]
    """Only with `include_body=true`: how `body` is encoded."""


@with_config(ConfigDict(extra="forbid", use_attribute_docstrings=True))
class Submission(TypedDict):
    """A submission with its prediction and its delivery history."""

    id: str
    request_id: str
    domain: str
    prompt: str | None
    json_schema: dict[str, Any] | None
    callback_url: str | None
    """Where callbacks go; the token in it is redacted."""
    batch: bool
    image_count: int
    prediction_id: str | None
    status: str | None
    error: str | None
    created_at: UtcTimestamp
    sent_at: UtcTimestamp | None
    updated_at: UtcTimestamp
    prediction: PredictionBody | None
    deliveries: Annotated[
        list[Delivery],
        Field(
            description=f"The most recent {SUBMISSION_DELIVERY_HISTORY} deliveries, oldest "
            "first; `GET /v1/deliveries?submission_id=` pages through all of them."
        ),
    ]

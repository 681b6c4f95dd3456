"""The dicts the read paths build are instances of the types the OpenAPI document comes from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import TypeAdapter, ValidationError

from receiver.http.shapes import DeliveryPage
from schemas.contract import PredictionResponse
from vlmhooks.public import Prediction, public_prediction
from vlmhooks.reads.queries import public_delivery
from vlmhooks.reads.shapes import Delivery

NOW = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def conforms(shape: Any, body: Any) -> None:
    """Validate the bytes that would go on the wire, strictly (no coercion)."""
    TypeAdapter(shape).validate_json(orjson.dumps(body), strict=True)


def prediction_row(**values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "extra": None,
        "usage": None,
        "id": "pred-1",
        "created_at": NOW,
        "completed_at": None,
        "response": None,
        "status": "running",
        "domain": None,
        "submission_id": None,
        "received_at": NOW,
        "updated_at": NOW,
        "delivery_count": 1,
        "source": "callback",
        "schema_valid": None,
        "schema_errors": None,
    }
    row.update(values)
    return row


def delivery_row(**values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": 7,
        "prediction_id": "pred-1",
        "submission_id": None,
        "received_at": NOW,
        "verdict": "stored",
        "reason": None,
        "http_status": 200,
        "source": "callback",
        "body_sha256": "0" * 64,
        "headers": {"content-type": "application/json"},
        "body": b'{"id": "pred-1"}',
        "body_truncated": False,
    }
    row.update(values)
    return row


@pytest.mark.parametrize(
    "row",
    [
        prediction_row(),
        prediction_row(
            extra={"domain": 5, "model_version": "2026-01"},  # the API's, kept verbatim
            usage={"credits_used": 3},
            completed_at=NOW,
            response={"text": "done"},
            status="completed",
            domain="document.ocr",
            submission_id="sub-1",
            delivery_count=3,
            schema_valid=False,
            schema_errors=["total: required"],
        ),
    ],
)
def test_public_prediction_is_a_prediction(row: dict[str, Any]) -> None:
    body = public_prediction(row)
    conforms(Prediction, body)
    conforms(list[Prediction], [body])
    # Code written for the API parses it with the contract model, unchanged.
    assert PredictionResponse.model_validate(body).id == row["id"]
    # The public SDK requires a usage object; a callback that sent none reads back as {}.
    assert body["usage"] == (row["usage"] or {})


@pytest.mark.parametrize("include_body", [False, True])
@pytest.mark.parametrize(
    "row",
    [
        delivery_row(),
        delivery_row(body=b"\xff\xfe not utf-8", verdict="rejected", http_status=401),
        delivery_row(body=None, headers=None, prediction_id=None, reason="413 Payload too large"),
    ],
)
def test_public_delivery_is_a_delivery(row: dict[str, Any], include_body: bool) -> None:
    body = public_delivery(row, include_body=include_body)
    conforms(Delivery, body)
    conforms(DeliveryPage, {"data": [body], "next_cursor": "opaque"})
    assert ("body_encoding" in body) is include_body


def test_closed_shapes_refuse_members_they_do_not_declare() -> None:
    body = public_prediction(prediction_row())
    body["vlmhooks"]["undeclared"] = True
    with pytest.raises(ValidationError, match="undeclared"):
        conforms(Prediction, body)
    delivery = {**public_delivery(delivery_row(), include_body=False), "undeclared": 1}
    with pytest.raises(ValidationError, match="undeclared"):
        conforms(Delivery, delivery)

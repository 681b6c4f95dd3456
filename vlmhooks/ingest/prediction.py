"""From raw bytes to an applied prediction: parse, validate against the contract, store.

The callback route runs `decode_json` then `validate_prediction` (keeping the claimed id
between the two for its audit row) and hands the write to the group committer; its
fetch-back uses `parse_prediction_body`. The submitter's `batch: false` results and
`reconcile` use `vlmhooks.store.ingest_one.ingest_prediction`, the same steps in a transaction
of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.contract import PredictionResponse
from vlmhooks.errors import ContractViolation, MalformedJSON, PayloadError
from vlmhooks.ingest.numbers import first_inexact_number
from vlmhooks.ingest.storable import check_storable

__all__ = [
    "decode_json",
    "field_errors",
    "invalid_fields",
    "parse_prediction_body",
    "validate_prediction",
]


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as `{"field": "usage.credits_used", "message": ...}` for a 422 body."""
    return [
        {
            "field": ".".join(str(part) for part in error["loc"]) or "<root>",
            "message": error["msg"],
        }
        for error in exc.errors(include_url=False)
    ]


def invalid_fields(
    exc: ValidationError, kind: type[PayloadError] = ContractViolation
) -> PayloadError:
    """The 422 naming every field pydantic refused, each with its message (raise it `from exc`)."""
    errors = field_errors(exc)
    fields = ", ".join(sorted({error["field"] for error in errors}))
    return kind(f"invalid fields: {fields}", errors=errors)


def validate_prediction(payload: Any, *, raw: bytes | None = None) -> PredictionResponse:
    """A `PredictionResponse` that the contract accepts and the database can hold (else 422).

    `raw`, the body `payload` was parsed from, lets the storability scan skip most work.
    """
    if not isinstance(payload, Mapping):
        raise ContractViolation(
            "the body must be a JSON object (a PredictionResponse)",
            errors=[{"field": "<root>", "message": "expected a JSON object"}],
        )
    try:
        prediction = PredictionResponse.model_validate(payload)
    except ValidationError as exc:
        raise invalid_fields(exc) from exc
    except OverflowError as exc:
        # Normalizing a year-1 or year-9999 time with an offset to UTC leaves datetime's
        # range; pydantic passes OverflowError through instead of reporting the field.
        field = _overflowing_field(payload)
        message = "out of the representable range once converted to UTC"
        raise ContractViolation(
            f"invalid fields: {field} ({message})",
            errors=[{"field": field, "message": message}],
        ) from exc
    check_storable(payload, prediction, raw=raw)
    return prediction


def _overflowing_field(payload: Mapping[str, Any]) -> str:
    for field in ("created_at", "completed_at"):
        try:
            PredictionResponse.model_validate({"id": "probe", field: payload.get(field)})
        except OverflowError:
            return field
        except ValidationError:
            continue
    return "<root>"


def decode_json(body: bytes) -> Any:
    """The one JSON parse of a body; `MalformedJSON` (400) when it is not UTF-8 JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # Valid JSON that orjson cannot hold (a number beyond a double's range) is the
        # sender's data we cannot keep exactly: 422 naming it, not "not JSON".
        inexact = first_inexact_number(body)
        if inexact is not None:
            message = "a number that cannot be stored exactly; send it as a string"
            raise ContractViolation(
                f"invalid fields: {inexact} ({message})",
                errors=[{"field": inexact, "message": message}],
            ) from exc
        raise MalformedJSON(f"the body is not valid JSON: {exc}") from exc


def parse_prediction_body(body: bytes) -> PredictionResponse:
    """JSON (400 when not) that satisfies the response contract (422 when not)."""
    return validate_prediction(decode_json(body), raw=body)

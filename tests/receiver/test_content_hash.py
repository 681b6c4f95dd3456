"""The dedup hash computed from the parsed payload equals the one from the model's wire form,
so rows stored before the fast path still dedup against new deliveries."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bench.payloads import signed_callbacks
from tests.receiver.callback_harness import prediction_body
from vlmhooks.ingest import validate_prediction
from vlmhooks.storable import storable_content_hash

PAYLOADS: list[dict[str, Any]] = [
    prediction_body("completed"),
    prediction_body("running", created_at="2026-11-24T12:00:00.5+01:00"),
    prediction_body("pending", usage=None, domain="document.invoice", extra_field=[1, {"a": 2}]),
    {"id": "minimal"},
    {"id": "usage-extra", "usage": {"credits_used": 3, "vendor_specific": "x"}, "status": "failed"},
    {"id": "big", "response": {"u64": 18446744073709551615, "f": 0.1, "s": "ü"}},
    orjson.loads(next(signed_callbacks(1)).body),
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: str(p["id"]))
def test_fast_hash_equals_the_wire_form_hash(payload: dict[str, Any]) -> None:
    prediction = validate_prediction(payload)
    assert storable_content_hash(prediction, payload) == storable_content_hash(prediction)

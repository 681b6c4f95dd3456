"""The dedup hash computed from the parsed payload equals the one from the model's wire form,
so rows stored before the fast path still dedup against new deliveries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.payloads import signed_callbacks
from tests.receiver.callback_harness import prediction_body
from vlmhooks.ingest.prediction import validate_prediction
from vlmhooks.ingest.storable import storable_content_hash, usage_json

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


# Text the store can hold (U+0000 is refused before hashing, by design).
_TEXT = st.text(st.characters(blacklist_characters="\x00"), max_size=5)
_TIMES = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
) | st.datetimes(
    min_value=datetime(2, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.sampled_from(
        [timezone(timedelta(hours=-8)), timezone(timedelta(hours=5, minutes=30))]
    ),
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=6,
)


@given(
    created_at=st.none() | _TIMES,
    completed_at=st.none() | _TIMES,
    status=st.sampled_from(["enqueued", "pending", "running", "paused", "completed", "failed"]),
    usage=st.none()
    | st.fixed_dictionaries(
        {},
        optional={
            "credits_used": st.none() | st.integers(0, 10**6),
            "element_type": st.none() | _TEXT,
            "elements_processed": st.integers(0, 100),
            "vendor_extra": _JSON,
        },
    ),
    response=_JSON,
)
def test_fast_hash_equals_the_wire_form_hash_for_any_payload(
    created_at: datetime | None,
    completed_at: datetime | None,
    status: str,
    usage: dict[str, Any] | None,
    response: Any,
) -> None:
    payload: dict[str, Any] = {"id": "p", "status": status, "response": response, "usage": usage}
    if created_at is not None:
        payload["created_at"] = created_at.isoformat()
    if completed_at is not None:
        payload["completed_at"] = completed_at.isoformat()
    prediction = validate_prediction(payload)
    assert storable_content_hash(prediction, payload) == storable_content_hash(prediction)
    assert usage_json(prediction.usage) == (
        None if prediction.usage is None else prediction.usage.model_dump(mode="json")
    )

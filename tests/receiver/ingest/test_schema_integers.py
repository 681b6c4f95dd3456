"""A JSON Schema "integer" means what the specification says: any number with no fraction."""

from __future__ import annotations

import pytest

from tests.receiver.callback_harness import Receiver, mint, prediction_body
from vlmhooks.ingest.schema_check import check_response_schema

DRAFTS = [
    None,  # no $schema: the latest draft
    "http://json-schema.org/draft-04/schema#",
    "http://json-schema.org/draft-07/schema#",
]


def _count_schema(draft: str | None) -> dict[str, object]:
    schema: dict[str, object] = {
        "type": "object",
        "properties": {"count": {"type": "integer"}},
        "required": ["count"],
    }
    if draft is not None:
        schema["$schema"] = draft
    return schema


@pytest.mark.parametrize("draft", DRAFTS)
def test_a_whole_float_is_an_integer_under_every_draft(draft: str | None) -> None:
    assert check_response_schema(_count_schema(draft), {"count": 2.0}) == (True, None)


@pytest.mark.parametrize("draft", DRAFTS)
def test_a_fraction_or_a_boolean_is_still_not_an_integer(draft: str | None) -> None:
    for value in (2.5, True, "2"):
        valid, errors = check_response_schema(_count_schema(draft), {"count": value})
        assert valid is False and errors and errors[0].startswith("count:"), value


def test_a_callback_with_a_whole_float_is_stored_valid(receiver: Receiver) -> None:
    receiver.add_submission("sub_int", json_schema=_count_schema(DRAFTS[1]))
    body = prediction_body(response={"count": 2.0})
    response = receiver.post_json(body, token=mint("sub_int"))
    assert response.status_code == 200, response.text
    (row,) = receiver.predictions()
    assert (row["schema_valid"], row["schema_errors"]) == (True, None)

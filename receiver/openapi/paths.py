"""The lookup API's operations for the OpenAPI document; every body schema is a shape's `$ref`.

`tests/receiver/test_openapi.py` keeps these in sync with the app's routes (and each
route's declared query parameters), both ways.
"""

from __future__ import annotations

from typing import Any

from receiver.api.shapes import DeliveryPage
from receiver.openapi.parts import (
    TEXT_PARAM,
    TIME,
    content,
    json_content,
    path_param,
    problem,
    query_param,
)
from receiver.openapi.schemas import schema_ref
from schemas.enums import Status
from vlmhooks.reads.pagination import DEFAULT_LIMIT, MAX_LIMIT, MAX_SKIP
from vlmhooks.reads.public import Prediction
from vlmhooks.reads.shapes import Submission
from vlmhooks.settings import DEFAULT_MAX_WAIT_SECONDS

__all__ = ["lookup_paths"]

_LIMIT = query_param(
    "limit",
    f"Page size (default {DEFAULT_LIMIT}).",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
)
_CURSOR = query_param(
    "cursor",
    "Opaque position from the previous page; a cursor this list did not issue is a 400.",
    {"type": "string", "minLength": 1},
)
_SKIP = query_param(
    "skip",
    f"Rows to skip, as in the API (default 0, at most {MAX_SKIP}: an offset costs the database "
    "every row it skips; page further with the cursor).",
    {"type": "integer", "minimum": 0, "maximum": MAX_SKIP, "default": 0},
)


def lookup_paths() -> dict[str, Any]:
    bad = problem("A query parameter is invalid; `parameter` names it.")
    return {
        "/v1/predictions": {
            "get": {
                "operationId": "listPredictions",
                "summary": "List predictions, newest first, in the API's shape",
                "description": "A plain JSON array, like the API's "
                "`GET /v1/predictions?skip=&limit=` (the public SDK's `predictions.list()` reads "
                "it unchanged). Ordered by "
                "(created_at, id) descending; both are immutable. When more rows follow, the "
                '`Link: <url>; rel="next"` header holds the next page\'s URL (same filters '
                "and limit, a `cursor`, no `skip`): following it while rows are inserted skips "
                "and repeats nothing. `skip` counts from the cursor's position (from the newest "
                "row without one), so `skip` and `cursor` compose.",
                "parameters": [
                    query_param("status", "Only this status.", schema_ref(Status)),
                    query_param("domain", "Only this domain.", TEXT_PARAM),
                    query_param("submission_id", "Only this submission's prediction.", TEXT_PARAM),
                    query_param(
                        "created_after", "created_at >= this (ISO 8601; UTC if no offset).", TIME
                    ),
                    query_param(
                        "created_before", "created_at < this (ISO 8601; UTC if no offset).", TIME
                    ),
                    _SKIP,
                    _LIMIT,
                    _CURSOR,
                ],
                "responses": {
                    "200": {
                        **json_content(
                            "One page.", {"type": "array", "items": schema_ref(Prediction)}
                        ),
                        "headers": {
                            "Link": {
                                "description": 'The next page, `<url>; rel="next"`; absent on '
                                "the last page.",
                                "schema": {"type": "string"},
                            }
                        },
                    },
                    "400": bad,
                },
            }
        },
        "/v1/predictions/{prediction_id}": {
            "get": {
                "operationId": "getPrediction",
                "summary": "One prediction, in the API's own shape",
                "description": "Reads like the API's `GET /v1/predictions/{id}`. With `wait`, "
                "the request is held until the prediction is terminal (completed or failed) or "
                "the wait ends, and then answers with whatever is stored.",
                "parameters": [
                    path_param("prediction_id", "The API's prediction id."),
                    query_param(
                        "wait",
                        "Seconds to long-poll for a terminal status; larger values are capped "
                        f"at VLMHOOKS_MAX_WAIT (default {DEFAULT_MAX_WAIT_SECONDS}, at most 60).",
                        {"type": "number", "minimum": 0},
                    ),
                ],
                "responses": {
                    "200": json_content(
                        "The prediction (possibly not terminal yet).", schema_ref(Prediction)
                    ),
                    "400": bad,
                    "404": problem("Not received, even after the wait."),
                },
            }
        },
        "/v1/submissions/{submission_id}": {
            "get": {
                "operationId": "getSubmission",
                "summary": "A submission with its prediction and delivery history",
                "parameters": [
                    path_param("submission_id", "Our submission id (carried in the token).")
                ],
                "responses": {
                    "200": json_content("The submission.", schema_ref(Submission)),
                    "404": problem("No such submission recorded."),
                },
            }
        },
        "/v1/deliveries": {
            "get": {
                "operationId": "listDeliveries",
                "summary": "The callback audit log, newest first",
                "description": "Pass `next_cursor` as `cursor` for the next page.",
                "parameters": [
                    query_param("prediction_id", "Only deliveries of this prediction.", TEXT_PARAM),
                    query_param(
                        "submission_id", "Only deliveries for this submission.", TEXT_PARAM
                    ),
                    query_param(
                        "include_body",
                        "Include the stored raw body (UTF-8 text, else base64).",
                        {"type": "boolean", "default": False},
                    ),
                    _LIMIT,
                    _CURSOR,
                ],
                "responses": {
                    "200": json_content("One page.", schema_ref(DeliveryPage)),
                    "400": bad,
                },
            }
        },
        "/v1/events": {
            "get": {
                "operationId": "streamEvents",
                "summary": "Server-Sent Events: every stored change",
                "description": "Frames are `id: <seq>`, `event: prediction.<status>`, `data: "
                "<Prediction JSON>`; `: keep-alive` comments flow while idle. Resume with the "
                "`Last-Event-ID` header (it wins over the query) or `last_event_id`/`after`: "
                "no gap, no duplicate. Without any, the stream starts at the newest event. "
                "The stream never ends on its own.",
                "parameters": [
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "description": "The last `id` received.",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                    query_param(
                        "last_event_id", "As Last-Event-ID.", {"type": "integer", "minimum": 0}
                    ),
                    query_param(
                        "after",
                        "As Last-Event-ID; `after=0` replays everything.",
                        {"type": "integer", "minimum": 0},
                    ),
                ],
                "responses": {
                    "200": content(
                        "An endless text/event-stream.", "text/event-stream", {"type": "string"}
                    ),
                    "400": bad,
                },
            }
        },
    }

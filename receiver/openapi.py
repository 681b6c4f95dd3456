"""The receiver's OpenAPI 3.1 document, written by hand; contract schemas come from pydantic.

`tests/receiver/test_openapi.py` keeps it in sync with the app's routes, both ways.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from receiver.auth import ACCESS_TOKEN_PARAM
from receiver.forwarding import forwarding_openapi_paths
from receiver.problems import PROBLEM_MEDIA_TYPE
from schemas.contract import PredictionResponse
from vlmhooks.pagination import DEFAULT_LIMIT, MAX_LIMIT
from vlmhooks.settings import DEFAULT_MAX_WAIT_SECONDS

OPENAPI_VERSION = "3.1.0"
API_VERSION = "0.1.0"
REF = "#/components/schemas/{model}"

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": REF.format(model=name)}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


_TIME: Schema = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = _nullable(_TIME)
_NULLABLE_TEXT = _nullable({"type": "string"})
# PostgreSQL text cannot hold NUL, so such a value is refused rather than looked up.
_TEXT_PARAM: Schema = {"type": "string", "pattern": "^[^\\u0000]*$"}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": _ref("Problem")}},
    }


def _json(description: str, schema: Schema) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, description: str, schema: Schema) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1},
    }


def _contract_schemas() -> dict[str, Schema]:
    schema = PredictionResponse.model_json_schema(ref_template=REF)
    definitions: dict[str, Schema] = schema.pop("$defs", {})
    return {**definitions, "PredictionResponse": schema}


def _our_schemas() -> dict[str, Schema]:
    vlmhooks: Schema = {
        "type": "object",
        "description": "The receiver's fields, under one key so they cannot clash with the API's.",
        "required": [
            "submission_id",
            "received_at",
            "updated_at",
            "delivery_count",
            "source",
            "schema_valid",
            "schema_errors",
            "terminal",
        ],
        "properties": {
            "submission_id": _NULLABLE_TEXT,
            "received_at": {**_TIME, "description": "when the first delivery was stored"},
            "updated_at": {**_TIME, "description": "when the last change was stored"},
            "delivery_count": {
                "type": "integer",
                "minimum": 1,
                "description": (
                    "Deliveries that changed this prediction (the first one and each forward "
                    "move). Exact duplicates and stale deliveries change nothing, so they are "
                    "not counted here; every delivery is in GET /v1/deliveries."
                ),
            },
            "source": {"type": "string", "description": "callback, fetch, poll, ..."},
            "schema_valid": _nullable({"type": "boolean"}),
            "schema_errors": _nullable({"type": "array", "items": {"type": "string"}}),
            "terminal": {"type": "boolean", "description": "status is completed or failed"},
        },
    }
    delivery: Schema = {
        "type": "object",
        "required": [
            "id",
            "prediction_id",
            "submission_id",
            "received_at",
            "verdict",
            "reason",
            "http_status",
            "source",
            "body_sha256",
            "headers",
            "body_size",
            "body_truncated",
        ],
        "properties": {
            "id": {"type": "integer"},
            "prediction_id": _NULLABLE_TEXT,
            "submission_id": _NULLABLE_TEXT,
            "received_at": _TIME,
            "verdict": {
                "type": "string",
                "enum": ["stored", "updated", "duplicate", "stale", "replay", "rejected"],
            },
            "reason": _NULLABLE_TEXT,
            "http_status": {"type": "integer"},
            "source": {"type": "string"},
            "body_sha256": {"type": "string"},
            "headers": _nullable({"type": "object", "additionalProperties": {"type": "string"}}),
            "body_size": _nullable({"type": "integer", "minimum": 0}),
            "body_truncated": {"type": "boolean"},
            "body": {
                **_NULLABLE_TEXT,
                "description": "Only with `include_body=true`: the stored (capped) raw body.",
            },
            "body_encoding": {
                "anyOf": [{"type": "string", "enum": ["utf-8", "base64"]}, {"type": "null"}],
                "description": "Only with `include_body=true`: how `body` is encoded.",
            },
        },
    }
    submission: Schema = {
        "type": "object",
        "required": ["id", "request_id", "domain", "created_at", "prediction", "deliveries"],
        "properties": {
            "id": {"type": "string"},
            "request_id": {"type": "string"},
            "domain": {"type": "string"},
            "prompt": _NULLABLE_TEXT,
            "json_schema": _nullable({"type": "object"}),
            "callback_url": {
                **_NULLABLE_TEXT,
                "description": "Where callbacks go; the token in it is redacted.",
            },
            "batch": {"type": "boolean"},
            "image_count": {"type": "integer"},
            "prediction_id": _NULLABLE_TEXT,
            "status": _NULLABLE_TEXT,
            "error": _NULLABLE_TEXT,
            "created_at": _TIME,
            "sent_at": _NULLABLE_TIME,
            "updated_at": _TIME,
            "prediction": _nullable(_ref("Prediction")),
            "deliveries": {
                "type": "array",
                "items": _ref("Delivery"),
                "description": "The most recent 100 deliveries, oldest first; "
                "`GET /v1/deliveries?submission_id=` pages through all of them.",
            },
        },
    }
    return {
        "Prediction": {
            "description": "The API's own `PredictionResponse` (unknown fields it sent are "
            "kept at the top level) plus the receiver's fields under `vlmhooks`.",
            "allOf": [
                _ref("PredictionResponse"),
                {
                    "type": "object",
                    "required": ["id", "created_at", "completed_at", "status", "vlmhooks"],
                    "properties": {
                        "domain": {"type": "string"},
                        "vlmhooks": _ref("VlmhooksFields"),
                    },
                },
            ],
        },
        "VlmhooksFields": vlmhooks,
        "PredictionPage": _page("Prediction"),
        "Delivery": delivery,
        "DeliveryPage": _page("Delivery"),
        "Submission": submission,
        "CallbackAck": {
            "type": "object",
            "required": ["id", "status", "duplicate"],
            "properties": {
                "id": {"type": "string"},
                "status": _ref("Status"),
                "duplicate": {"type": "boolean"},
                "verdict": {"type": "string", "enum": ["stored", "updated", "duplicate", "stale"]},
            },
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details.",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "parameter": {"type": "string", "description": "The query parameter at fault."},
            },
            "additionalProperties": True,
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string", "enum": ["ok"]}},
        },
        "Ready": {
            "type": "object",
            "required": ["status", "revision"],
            "properties": {
                "status": {"type": "string", "enum": ["ready"]},
                "revision": _NULLABLE_TEXT,
            },
        },
    }


def _page(item: str) -> Schema:
    return {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": _ref(item)},
            "next_cursor": {
                **_NULLABLE_TEXT,
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
        },
    }


_LIMIT = _query(
    "limit",
    f"Page size (default {DEFAULT_LIMIT}).",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
)
_CURSOR = _query(
    "cursor",
    "Opaque `next_cursor` from the previous page; a cursor this list did not issue is a 400.",
    {"type": "string", "minLength": 1},
)


def _lookup_paths() -> dict[str, Any]:
    bad = _problem("A query parameter is invalid; `parameter` names it.")
    return {
        "/v1/predictions": {
            "get": {
                "operationId": "listPredictions",
                "summary": "List predictions, newest first",
                "description": "Ordered by (created_at, id) descending; both are immutable, so "
                "paging with `cursor` while rows are inserted skips and repeats nothing.",
                "parameters": [
                    _query("status", "Only this status.", _ref("Status")),
                    _query("domain", "Only this domain.", _TEXT_PARAM),
                    _query("submission_id", "Only this submission's prediction.", _TEXT_PARAM),
                    _query(
                        "created_after", "created_at >= this (ISO 8601; UTC if no offset).", _TIME
                    ),
                    _query(
                        "created_before", "created_at < this (ISO 8601; UTC if no offset).", _TIME
                    ),
                    _LIMIT,
                    _CURSOR,
                ],
                "responses": {"200": _json("One page.", _ref("PredictionPage")), "400": bad},
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
                    _path("prediction_id", "The API's prediction id."),
                    _query(
                        "wait",
                        "Seconds to long-poll for a terminal status; larger values are capped "
                        f"at VLMHOOKS_MAX_WAIT (default {DEFAULT_MAX_WAIT_SECONDS}, at most 60).",
                        {"type": "number", "minimum": 0},
                    ),
                ],
                "responses": {
                    "200": _json("The prediction (possibly not terminal yet).", _ref("Prediction")),
                    "400": bad,
                    "404": _problem("Not received, even after the wait."),
                },
            }
        },
        "/v1/submissions/{submission_id}": {
            "get": {
                "operationId": "getSubmission",
                "summary": "A submission with its prediction and delivery history",
                "parameters": [_path("submission_id", "Our submission id (carried in the token).")],
                "responses": {
                    "200": _json("The submission.", _ref("Submission")),
                    "404": _problem("No such submission recorded."),
                },
            }
        },
        "/v1/deliveries": {
            "get": {
                "operationId": "listDeliveries",
                "summary": "The callback audit log, newest first",
                "parameters": [
                    _query("prediction_id", "Only deliveries of this prediction.", _TEXT_PARAM),
                    _query("submission_id", "Only deliveries for this submission.", _TEXT_PARAM),
                    _query(
                        "include_body",
                        "Include the stored raw body (UTF-8 text, else base64).",
                        {"type": "boolean", "default": False},
                    ),
                    _LIMIT,
                    _CURSOR,
                ],
                "responses": {"200": _json("One page.", _ref("DeliveryPage")), "400": bad},
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
                    _query("last_event_id", "As Last-Event-ID.", {"type": "integer", "minimum": 0}),
                    _query(
                        "after",
                        "As Last-Event-ID; `after=0` replays everything.",
                        {"type": "integer", "minimum": 0},
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "An endless text/event-stream.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": bad,
                },
            }
        },
        "/dashboard": {
            "get": {
                "operationId": "dashboard",
                "summary": "Recent predictions as HTML, updated live",
                "description": f"Open as `/dashboard?{ACCESS_TOKEN_PARAM}=<key>` in a browser: "
                "the page's EventSource reuses the key the same way.",
                "responses": {
                    "200": {
                        "description": "HTML.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "description": "Callbacks by verdict, ingest latency, group-commit batch sizes "
                "(this process) and predictions by status (the whole database). Needs a lookup "
                "API key, like the lookup routes, unless anonymous reads are enabled.",
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


def _public_paths() -> dict[str, Any]:
    open_access: list[dict[str, list[str]]] = []
    return {
        "/v1/callbacks/{token}": {
            "post": {
                "operationId": "receiveCallback",
                "summary": "A prediction callback from the API",
                "description": "Verified by the callback token in the path, then by the provider "
                "signatures configured (`X-VLMRun-Signature`, Standard Webhooks). Answered only "
                "after the prediction is committed; a duplicate is acknowledged, not stored twice.",
                "security": open_access,
                "parameters": [
                    _path("token", "The signed token minted into the callback_url."),
                    {
                        "name": "X-VLMRun-Signature",
                        "in": "header",
                        "required": False,
                        "description": "`sha256=<hex HMAC-SHA256 of the raw body>`; required "
                        "when VLMHOOKS_VLMRUN_WEBHOOK_SECRETS is set.",
                        "schema": {"type": "string"},
                    },
                    *(
                        {
                            "name": name,
                            "in": "header",
                            "required": False,
                            "description": "Standard Webhooks; required when "
                            "VLMHOOKS_STANDARD_WEBHOOK_SECRETS is set.",
                            "schema": {"type": "string"},
                        }
                        for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
                    ),
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("PredictionResponse")}},
                },
                "responses": {
                    "200": _json(
                        "Stored (or a duplicate/stale delivery, acknowledged).", _ref("CallbackAck")
                    ),
                    "400": _problem("Not JSON, or the body ended early."),
                    "401": _problem("Bad or expired token, or a missing/wrong signature."),
                    "409": _problem("The prediction id contradicts the submission's."),
                    "413": _problem("The body is over VLMHOOKS_MAX_BODY_BYTES."),
                    "415": _problem("The content type is not JSON."),
                    "422": _problem(
                        "The body breaks the PredictionResponse contract; `errors` lists fields."
                    ),
                    "502": _problem("Fetch-back is on and the API could not be read back."),
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the process is up",
                "security": open_access,
                "responses": {"200": _json("Up.", _ref("Health"))},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the database answers and migrations are at head",
                "security": open_access,
                "responses": {
                    "200": _json("Ready.", _ref("Ready")),
                    "503": _problem("Database unreachable or schema not at head."),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": open_access,
                "responses": {"200": _json("OpenAPI 3.1.", {"type": "object"})},
            }
        },
    }


@functools.cache
def _document(auth_required: bool) -> dict[str, Any]:
    paths = {**_lookup_paths(), **forwarding_openapi_paths()}
    security: list[dict[str, list[str]]] = (
        [{"bearerAuth": []}, {"accessToken": []}] if auth_required else []
    )
    for operations in paths.values():
        for operation in operations.values():
            operation["security"] = security
            if auth_required:
                operation["responses"]["401"] = _problem(
                    "Missing header, wrong scheme or unknown key (`WWW-Authenticate: Bearer`)."
                )
    auth_note = (
        "Lookup routes and /metrics need `Authorization: Bearer <key>` (any key of "
        f"VLMHOOKS_API_KEYS), or `?{ACCESS_TOKEN_PARAM}=<key>` on GET for browsers' "
        "EventSource (it can end up in logs: prefer the header)."
        if auth_required
        else "This deployment serves reads anonymously (VLMHOOKS_ALLOW_ANONYMOUS_READS=true)."
    )
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "vlmhooks receiver",
            "version": API_VERSION,
            "description": "Receives VLM Run prediction callbacks and serves them back. "
            + auth_note,
        },
        "paths": {**paths, **_public_paths()},
        "components": {
            "schemas": {**_contract_schemas(), **_our_schemas()},
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "accessToken": {"type": "apiKey", "in": "query", "name": ACCESS_TOKEN_PARAM},
            },
        },
    }


def openapi_document(*, auth_required: bool) -> dict[str, Any]:
    """A fresh copy, so a caller that edits it cannot corrupt the cached one."""
    return copy.deepcopy(_document(auth_required))

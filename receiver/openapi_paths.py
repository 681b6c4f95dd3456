"""The receiver's operations for the OpenAPI document; every body schema is a shape's `$ref`.

`tests/receiver/test_openapi.py` keeps these in sync with the app's routes, both ways.
"""

from __future__ import annotations

from typing import Any

from receiver.auth import ACCESS_TOKEN_PARAM
from receiver.callbacks import CALLBACK_PATH
from receiver.openapi_schemas import Schema, schema_ref
from receiver.problems import PROBLEM_MEDIA_TYPE
from receiver.replay_route import REPLAY_PATH
from receiver.shapes import (
    CallbackAck,
    DeliveryPage,
    Health,
    PredictionPage,
    Problem,
    Ready,
    ReplayReport,
    ReplayRequest,
    SelfTestAck,
)
from schemas.contract import PredictionResponse
from schemas.enums import Status
from vlmhooks.pagination import DEFAULT_LIMIT, MAX_LIMIT
from vlmhooks.public import Prediction
from vlmhooks.settings import DEFAULT_MAX_WAIT_SECONDS
from vlmhooks.shapes import Submission

__all__ = ["lookup_paths", "problem", "public_paths"]

_TIME: Schema = {"type": "string", "format": "date-time"}
# PostgreSQL text cannot hold NUL, so such a value is refused rather than looked up.
_TEXT_PARAM: Schema = {"type": "string", "pattern": "^[^\\u0000]*$"}


def problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": schema_ref(Problem)}},
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


def lookup_paths() -> dict[str, Any]:
    bad = problem("A query parameter is invalid; `parameter` names it.")
    return {
        "/v1/predictions": {
            "get": {
                "operationId": "listPredictions",
                "summary": "List predictions, newest first",
                "description": "Ordered by (created_at, id) descending; both are immutable, so "
                "paging with `cursor` while rows are inserted skips and repeats nothing.",
                "parameters": [
                    _query("status", "Only this status.", schema_ref(Status)),
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
                "responses": {"200": _json("One page.", schema_ref(PredictionPage)), "400": bad},
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
                    "200": _json(
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
                "parameters": [_path("submission_id", "Our submission id (carried in the token).")],
                "responses": {
                    "200": _json("The submission.", schema_ref(Submission)),
                    "404": problem("No such submission recorded."),
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
                "responses": {"200": _json("One page.", schema_ref(DeliveryPage)), "400": bad},
            }
        },
        REPLAY_PATH: {
            "post": {
                "operationId": "replayDeliveries",
                "summary": "Re-ingest stored deliveries (idempotent; `dry_run` changes nothing)",
                "description": "Runs the callback's checks again over each selected delivery's "
                "stored raw body, oldest first: provider signatures as of the time it was "
                "received (with today's secrets), media type, JSON, contract, binding, then the "
                "forward-only write; an unchanged prediction's json_schema verdict is re-checked. "
                "A body cut at the audit cap, or refused at the signature check, is never "
                "replayed. Needs a key even where reads are anonymous.",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": schema_ref(ReplayRequest)}},
                },
                "responses": {
                    "200": _json("What each delivery did (or would do).", schema_ref(ReplayReport)),
                    "400": problem("The body is not JSON."),
                    "403": problem("No API keys are configured: replay is never anonymous."),
                    "413": problem("The selection is over 16 KiB."),
                    "422": problem("A selector is invalid; `errors` lists fields."),
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


def public_paths() -> dict[str, Any]:
    open_access: list[dict[str, list[str]]] = []
    return {
        CALLBACK_PATH: {
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
                    "content": {"application/json": {"schema": schema_ref(PredictionResponse)}},
                },
                "responses": {
                    "200": _json(
                        "Stored (or a duplicate/stale delivery, acknowledged); for a "
                        "`vlm-receiver check` self-test token, the self-test's answer (nothing "
                        "stored).",
                        {"oneOf": [schema_ref(CallbackAck), schema_ref(SelfTestAck)]},
                    ),
                    "400": problem("Not JSON, or the body ended early."),
                    "401": problem(
                        "Bad or expired token, or a missing/wrong signature (a self-test's "
                        "problem names the `piece` that failed)."
                    ),
                    "409": problem("The prediction id contradicts the submission's."),
                    "413": problem("The body is over VLMHOOKS_MAX_BODY_BYTES."),
                    "415": problem("The content type is not JSON."),
                    "422": problem(
                        "The body breaks the PredictionResponse contract; `errors` lists fields."
                    ),
                    "502": problem("Fetch-back is on and the API could not be read back."),
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the process is up",
                "security": open_access,
                "responses": {"200": _json("Up.", schema_ref(Health))},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the database answers and migrations are at head",
                "security": open_access,
                "responses": {
                    "200": _json("Ready.", schema_ref(Ready)),
                    "503": problem("Database unreachable or schema not at head."),
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

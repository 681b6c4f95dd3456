"""The operations anyone may call, for the OpenAPI document: callbacks, index, probes."""

from __future__ import annotations

from typing import Any

from receiver.api.shapes import CallbackAck, Health, Index, Ready, SelfTestAck
from receiver.ingest.callbacks import CALLBACK_PATH
from receiver.openapi.parts import json_content, path_param, problem
from receiver.openapi.schemas import schema_ref
from schemas.contract import PredictionResponse

__all__ = ["public_paths"]


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
                    path_param("token", "The signed token minted into the callback_url."),
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
                    "200": json_content(
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
        "/": {
            "get": {
                "operationId": "index",
                "summary": "A small JSON index: links to the dashboard, this document, probes",
                "security": open_access,
                "responses": {"200": json_content("The index.", schema_ref(Index))},
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the process is up",
                "security": open_access,
                "responses": {"200": json_content("Up.", schema_ref(Health))},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the database answers and migrations are at head",
                "security": open_access,
                "responses": {
                    "200": json_content("Ready.", schema_ref(Ready)),
                    "503": problem("Database unreachable or schema not at head."),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": open_access,
                "responses": {"200": json_content("OpenAPI 3.1.", {"type": "object"})},
            }
        },
    }

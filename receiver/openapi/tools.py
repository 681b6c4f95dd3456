"""Authenticated operations that are not reads of stored data, for the OpenAPI document:
the API's health check, callback-URL minting and metrics (the dashboard's are in
`receiver/dashboard/openapi.py`)."""

from __future__ import annotations

from typing import Any

from receiver.api.callback_urls import CALLBACK_URLS_PATH, MAX_REQUEST_BYTES
from receiver.api.replay_route import REPLAY_PATH
from receiver.api.shapes import (
    MAX_CALLBACK_URLS,
    CallbackUrls,
    CallbackUrlsRequest,
    Health,
    ReplayReport,
    ReplayRequest,
)
from receiver.openapi.parts import json_content, problem
from receiver.openapi.schemas import schema_ref

__all__ = ["tool_paths"]


def tool_paths() -> dict[str, Any]:
    return {
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
                    "200": json_content(
                        "What each delivery did (or would do).", schema_ref(ReplayReport)
                    ),
                    "400": problem("The body is not JSON."),
                    "403": problem("No API keys are configured: replay is never anonymous."),
                    "413": problem("The selection is over 16 KiB."),
                    "422": problem("A selector is invalid; `errors` lists fields."),
                },
            }
        },
        "/v1/health": {
            "get": {
                "operationId": "apiHealth",
                "summary": "The API's health check: the process is up and the key is valid",
                "description": "What the public `vlmrun` SDK calls when a client is made "
                "(`VLMRun(base_url=<receiver>/v1)`), to validate its key; `/healthz` is the "
                "unauthenticated liveness probe.",
                "responses": {"200": json_content("Up.", schema_ref(Health))},
            }
        },
        CALLBACK_URLS_PATH: {
            "post": {
                "operationId": "createCallbackUrls",
                "summary": "Freshly signed callback URLs, for clients that call VLM Run themselves",
                "description": "Each URL carries a signed token bound to a submission id (a "
                "fresh one per URL, or the one given, then `count` must be 1); send it as one "
                "request's `callback_url`. Nothing is stored. An empty body asks for one URL. "
                f"At most {MAX_CALLBACK_URLS} URLs per call; the body is at most "
                f"{MAX_REQUEST_BYTES} bytes. Refused (403) when the deployment has no API keys.",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": schema_ref(CallbackUrlsRequest)}},
                },
                "responses": {
                    "201": json_content("Minted.", schema_ref(CallbackUrls)),
                    "400": problem("Not JSON, or an unknown query parameter."),
                    "403": problem("Anonymous reads are on and no API key is configured."),
                    "413": problem("The body is too large."),
                    "415": problem("The content type is not JSON."),
                    "422": problem("The body breaks the request schema; `errors` lists fields."),
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

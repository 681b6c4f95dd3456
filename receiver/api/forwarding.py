"""Operations on forwarding: destinations and their backlog, dead letters, retry.

Everything is read from (and written to) the database, so any receiver process answers for
every relay, wherever it runs. The routes and their OpenAPI entries live together here.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from receiver.api.auth import RequireBearer
from receiver.api.params import bad_parameter, int_param, parse_int
from receiver.responses import json_response
from receiver.state import receiver_state
from schemas.contract import utc_now
from vlmhooks.errors import NotFound
from vlmhooks.forward.registry import (
    dead_letters,
    destination_exists,
    forwarding_status,
    retry_dead_letters,
)
from vlmhooks.reads.pagination import DEFAULT_LIMIT, MAX_LIMIT

__all__ = ["forwarding_openapi_paths", "forwarding_routes"]

MAX_MESSAGE_IDS = 1000


async def forwarding_endpoint(request: Request) -> Response:
    """`GET /v1/forwarding`: each destination (credentials masked) and its backlog."""
    state = receiver_state(request)

    def read() -> list[dict[str, Any]]:
        with state.engine.connect() as connection:
            return forwarding_status(connection, utc_now())

    return json_response({"destinations": await run_in_threadpool(read)})


async def _known(request: Request) -> str:
    state = receiver_state(request)
    destination_id: str = request.path_params["destination_id"]

    def exists() -> bool:
        with state.engine.connect() as connection:
            return destination_exists(connection, destination_id)

    if not await run_in_threadpool(exists):
        raise NotFound(f"no forwarding destination {destination_id!r}", destination=destination_id)
    return destination_id


async def dead_letters_endpoint(request: Request) -> Response:
    """`GET /v1/forwarding/{id}/dead-letters`: changes given up on, oldest first."""
    state = receiver_state(request)
    destination_id = await _known(request)
    query = request.query_params
    limit = int_param(query, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    raw_cursor = query.get("cursor")
    after = None if raw_cursor is None else parse_int("cursor", raw_cursor, minimum=0)

    def read() -> tuple[list[dict[str, Any]], int | None]:
        with state.engine.connect() as connection:
            return dead_letters(connection, destination_id, after=after, limit=limit)

    page, next_after = await run_in_threadpool(read)
    next_cursor = None if next_after is None else str(next_after)
    return json_response({"data": page, "next_cursor": next_cursor})


async def retry_endpoint(request: Request) -> Response:
    """`POST /v1/forwarding/{id}/retry[?message_id=...]`: dead letters pending again, and
    the destination enabled again if an HTTP 410 had disabled it."""
    state = receiver_state(request)
    destination_id = await _known(request)
    message_ids = request.query_params.getlist("message_id") or None
    if message_ids is not None and (
        len(message_ids) > MAX_MESSAGE_IDS or any("\x00" in m for m in message_ids)
    ):
        raise bad_parameter("message_id", f"at most {MAX_MESSAGE_IDS} ids, without NUL")
    now = utc_now()
    # Through the group committer: on SQLite it is the one writer.
    retried = await state.writer.run(
        lambda connection: retry_dead_letters(connection, destination_id, now, message_ids)
    )
    return json_response({"destination": destination_id, "retried": retried, "enabled": True})


def forwarding_routes() -> list[BaseRoute]:
    authenticated = [Middleware(RequireBearer)]
    return [
        Route("/v1/forwarding", forwarding_endpoint, methods=["GET"], middleware=authenticated),
        Route(
            "/v1/forwarding/{destination_id}/dead-letters",
            dead_letters_endpoint,
            methods=["GET"],
            middleware=authenticated,
        ),
        Route(
            "/v1/forwarding/{destination_id}/retry",
            retry_endpoint,
            methods=["POST"],
            middleware=authenticated,
        ),
    ]


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Problem"}
    return {"description": description, "content": {"application/problem+json": {"schema": schema}}}


_TEXT = {"type": "string"}
_NULLABLE_TEXT = {"anyOf": [_TEXT, {"type": "null"}]}
_NULLABLE_TIME = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}
_DESTINATION_ID = {
    "name": "destination_id",
    "in": "path",
    "required": True,
    "description": "A destination's `id` from `GET /v1/forwarding`.",
    "schema": {"type": "string", "minLength": 1},
}
_DESTINATION = {
    "type": "object",
    "required": ["id", "kind", "target", "enabled", "backlog", "dead_letters"],
    "properties": {
        "id": _TEXT,
        "kind": {"enum": ["http", "redis", "nats", "amqp"]},
        "target": {"type": "string", "description": "The URL, every credential masked."},
        "filters": {
            "type": "object",
            "properties": {
                "events": {"anyOf": [{"type": "array", "items": _TEXT}, {"type": "null"}]},
                "domain": _NULLABLE_TEXT,
            },
        },
        "configured": {"type": "boolean", "description": "In the latest configuration."},
        "enabled": {"type": "boolean", "description": "False after an HTTP 410."},
        "disabled_at": _NULLABLE_TIME,
        "disabled_reason": _NULLABLE_TEXT,
        "backlog": {"type": "integer", "minimum": 0},
        "oldest_pending_age_seconds": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        "dead_letters": {"type": "integer", "minimum": 0},
        "last_error": _NULLABLE_TEXT,
        "last_error_at": _NULLABLE_TIME,
        "last_delivered_at": _NULLABLE_TIME,
    },
}
_DEAD_LETTER = {
    "type": "object",
    "required": ["id", "message_id", "prediction_id", "type", "attempts"],
    "properties": {
        "id": {"type": "integer"},
        "message_id": _TEXT,
        "prediction_id": _TEXT,
        "type": _TEXT,
        "attempts": {"type": "integer"},
        "created_at": _NULLABLE_TIME,
        "dead_at": _NULLABLE_TIME,
        "last_error": _NULLABLE_TEXT,
    },
}


def forwarding_openapi_paths() -> dict[str, Any]:
    """Self-contained OpenAPI path items (only `Problem` is shared) for these routes."""
    missing = _problem("No destination with this id.")
    bad = _problem("A query parameter is invalid; `parameter` names it.")
    return {
        "/v1/forwarding": {
            "get": {
                "operationId": "getForwarding",
                "summary": "Forwarding destinations, their backlog and last error",
                "responses": {
                    "200": _json(
                        "Every configured destination, and unconfigured ones that hold rows.",
                        {
                            "type": "object",
                            "required": ["destinations"],
                            "properties": {
                                "destinations": {"type": "array", "items": _DESTINATION}
                            },
                        },
                    )
                },
            }
        },
        "/v1/forwarding/{destination_id}/dead-letters": {
            "get": {
                "operationId": "listDeadLetters",
                "summary": "Changes given up on after VLMHOOKS_FORWARD_MAX_AGE, oldest first",
                "parameters": [
                    _DESTINATION_ID,
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "required": False,
                        "description": "`next_cursor` from the previous page.",
                        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                    },
                ],
                "responses": {
                    "200": _json(
                        "One page.",
                        {
                            "type": "object",
                            "required": ["data", "next_cursor"],
                            "properties": {
                                "data": {"type": "array", "items": _DEAD_LETTER},
                                "next_cursor": _NULLABLE_TEXT,
                            },
                        },
                    ),
                    "400": bad,
                    "404": missing,
                },
            }
        },
        "/v1/forwarding/{destination_id}/retry": {
            "post": {
                "operationId": "retryDeadLetters",
                "summary": "Deliver dead letters again; re-enable a destination a 410 disabled",
                "parameters": [
                    _DESTINATION_ID,
                    {
                        "name": "message_id",
                        "in": "query",
                        "required": False,
                        "description": "Only these messages (repeatable); all when absent.",
                        "schema": {"type": "array", "items": {"type": "string"}},
                        "style": "form",
                        "explode": True,
                    },
                ],
                "responses": {
                    "200": _json(
                        "How many dead letters are pending again.",
                        {
                            "type": "object",
                            "required": ["destination", "retried", "enabled"],
                            "properties": {
                                "destination": _TEXT,
                                "retried": {"type": "integer", "minimum": 0},
                                "enabled": {"type": "boolean"},
                            },
                        },
                    ),
                    "400": bad,
                    "404": missing,
                },
            }
        },
    }

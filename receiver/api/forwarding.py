"""Operations on forwarding: destinations and their backlog, dead letters, retry.

Everything is read from (and written to) the database, so any receiver process answers for
every relay, wherever it runs. Each route declares its OpenAPI operation beside it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, with_config
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from typing_extensions import TypedDict

from receiver.http.auth import RequireBearer
from receiver.http.params import LimitParam, bad_parameter, int_param, parse_int
from receiver.http.responses import json_response
from receiver.http.routing import Answer, DocumentedRoute, Operation
from receiver.http.shapes import DeadLetterPage, ForwardingStatus, RetryAnswer
from receiver.state import receiver_state
from schemas.contract import utc_now
from vlmhooks.errors import NotFound
from vlmhooks.forward.registry import (
    dead_letters,
    destination_exists,
    forwarding_status,
    retry_dead_letters,
)
from vlmhooks.reads.bounded import call_within
from vlmhooks.reads.pagination import DEFAULT_LIMIT, MAX_LIMIT

__all__ = ["forwarding_routes"]

MAX_MESSAGE_IDS = 1000


async def forwarding_endpoint(request: Request) -> Response:
    """`GET /v1/forwarding`: each destination (credentials masked) and its backlog."""
    state = receiver_state(request)

    def read() -> list[dict[str, Any]]:
        with state.engine.connect() as connection:
            return forwarding_status(connection, utc_now())

    return json_response({"destinations": await call_within(state.settings.db_timeout, read)})


async def _known(request: Request) -> str:
    state = receiver_state(request)
    destination_id: str = request.path_params["destination_id"]

    def exists() -> bool:
        with state.engine.connect() as connection:
            return destination_exists(connection, destination_id)

    if not await call_within(state.settings.db_timeout, exists):
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

    page, next_after = await call_within(state.settings.db_timeout, read)
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


@with_config(ConfigDict(use_attribute_docstrings=True))
class DeadLettersQuery(TypedDict, total=False):
    limit: LimitParam
    """Page size."""
    cursor: Annotated[str, Field(pattern="^[0-9]{1,18}$")]
    """`next_cursor` from the previous page."""


@with_config(ConfigDict(use_attribute_docstrings=True))
class RetryQuery(TypedDict, total=False):
    message_id: list[str]
    """Only these messages (repeatable); all when absent."""


def forwarding_routes() -> list[BaseRoute]:
    guarded = [Middleware(RequireBearer)]
    missing = "No destination with this id."
    return [
        DocumentedRoute(
            "/v1/forwarding",
            forwarding_endpoint,
            middleware=guarded,
            strict_query=True,
            get=Operation(
                "getForwarding",
                "Forwarding destinations, their backlog and last error",
                responses={200: Answer("Every destination listed.", ForwardingStatus)},
            ),
        ),
        DocumentedRoute(
            "/v1/forwarding/{destination_id}/dead-letters",
            dead_letters_endpoint,
            middleware=guarded,
            strict_query=True,
            get=Operation(
                "listDeadLetters",
                "Changes given up on after VLMHOOKS_FORWARD_MAX_AGE, oldest first",
                query=DeadLettersQuery,
                responses={200: Answer("One page.", DeadLetterPage), 404: missing},
            ),
        ),
        DocumentedRoute(
            "/v1/forwarding/{destination_id}/retry",
            retry_endpoint,
            middleware=guarded,
            strict_query=True,
            post=Operation(
                "retryDeadLetters",
                "Deliver dead letters again; re-enable a destination a 410 disabled",
                query=RetryQuery,
                responses={
                    200: Answer("How many dead letters are pending again.", RetryAnswer),
                    404: missing,
                },
            ),
        ),
    ]

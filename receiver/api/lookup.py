"""The lookup API: predictions (with long-poll), submissions, deliveries, events.

Every route here sits behind `RequireBearer`; callbacks and health checks do not.
"""

from __future__ import annotations

import asyncio
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, with_config
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from typing_extensions import TypedDict

from receiver.http.auth import ACCESS_TOKEN_PARAM, RequireBearer
from receiver.http.params import (
    LimitParam,
    SeqParam,
    TextParam,
    bool_param,
    int_param,
    status_param,
    text_param,
    timestamp_param,
    wait_param,
)
from receiver.http.responses import json_response
from receiver.http.routing import Answer, DocumentedRoute, Operation
from receiver.http.shapes import DeliveryPage
from receiver.live.fanout import FanOut
from receiver.live.sse import EventStream, stream_events
from receiver.state import ReceiverState, receiver_state
from schemas.enums import Status
from vlmhooks.errors import NotFound
from vlmhooks.public import Prediction
from vlmhooks.reads.bounded import call_within
from vlmhooks.reads.pagination import (
    CURSOR_PARAM,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_SKIP,
    SKIP_PARAM,
    decode_delivery_cursor,
    decode_prediction_cursor,
    encode_delivery_cursor,
    encode_prediction_cursor,
)
from vlmhooks.reads.queries import (
    PredictionFilters,
    get_prediction,
    get_submission,
    list_deliveries,
    list_predictions,
)
from vlmhooks.reads.shapes import Submission
from vlmhooks.settings import DEFAULT_MAX_WAIT_SECONDS

__all__ = [
    "WAIT_CEILING_SECONDS",
    "DeliveriesQuery",
    "PredictionQuery",
    "PredictionsQuery",
    "get_prediction_endpoint",
    "get_submission_endpoint",
    "list_deliveries_endpoint",
    "list_predictions_endpoint",
    "lookup_routes",
]

# The SSE stream is an ASGI app of its own, not a `Response`.
Endpoint = Callable[[Request], Awaitable[Response | EventStream]]

# However large the configured cap, a request is never held longer than this.
WAIT_CEILING_SECONDS = 60.0


@with_config(ConfigDict(use_attribute_docstrings=True))
class PredictionsQuery(TypedDict, total=False):
    status: Status
    """Only this status."""
    domain: TextParam
    """Only this domain."""
    submission_id: TextParam
    """Only this submission's prediction."""
    created_after: datetime
    """created_at >= this (ISO 8601; UTC if no offset)."""
    created_before: datetime
    """created_at < this (ISO 8601; UTC if no offset)."""
    skip: Annotated[int, Field(ge=0, le=MAX_SKIP, json_schema_extra={"default": 0})]
    """Rows to skip, as in the API: an offset costs the database every row it skips; page
    further with the cursor."""
    limit: LimitParam
    """Page size."""
    cursor: Annotated[str, Field(min_length=1)]
    """Opaque position from the previous page; a cursor this list did not issue is a 400."""


@with_config(ConfigDict(use_attribute_docstrings=True))
class PredictionQuery(TypedDict, total=False):
    wait: Annotated[
        float,
        Field(
            ge=0,
            description="Seconds to long-poll for a terminal status; larger values are capped "
            f"at VLMHOOKS_MAX_WAIT (default {DEFAULT_MAX_WAIT_SECONDS}, at most 60).",
        ),
    ]


@with_config(ConfigDict(use_attribute_docstrings=True))
class DeliveriesQuery(TypedDict, total=False):
    prediction_id: TextParam
    """Only deliveries of this prediction."""
    submission_id: TextParam
    """Only deliveries for this submission."""
    include_body: Annotated[bool, Field(json_schema_extra={"default": False})]
    """Include the stored raw body (UTF-8 text, else base64)."""
    limit: LimitParam
    """Page size."""
    cursor: Annotated[str, Field(min_length=1)]
    """`next_cursor` from the previous page; a cursor this list did not issue is a 400."""


@with_config(ConfigDict(use_attribute_docstrings=True))
class EventsQuery(TypedDict, total=False):
    last_event_id: SeqParam
    """As Last-Event-ID."""
    after: SeqParam
    """As Last-Event-ID; `after=0` replays everything."""


@with_config(ConfigDict(use_attribute_docstrings=True))
class EventsHeaders(TypedDict, total=False):
    last_event_id: Annotated[int, Field(ge=0, alias="Last-Event-ID")]
    """The last `id` received (wins over the query)."""


def _limit(request: Request) -> int:
    return int_param(
        request.query_params, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT
    )


async def get_prediction_endpoint(request: Request) -> Response:
    """`GET /v1/predictions/{id}[?wait=N]`: the API's own shape; waits for completed or failed."""
    state = receiver_state(request)
    prediction_id: str = request.path_params["prediction_id"]
    cap = min(float(state.settings.max_wait), WAIT_CEILING_SECONDS)
    wait = wait_param(request.query_params, "wait", cap)
    if state.read_through is not None:
        await _read_through(state, prediction_id)
    timeout = state.settings.db_timeout
    if wait > 0 and state.fanout is not None:
        return await _wait_for_terminal(request, state, state.fanout, prediction_id, wait)
    deadline = time.monotonic() + wait
    # Serverless (or no wait): each request reads for itself; nothing outlives it.
    while True:
        # Taken before the read, so a commit landing between read and wait still wakes us.
        ticket = state.events.ticket()
        prediction = await call_within(timeout, get_prediction, state.engine, prediction_id)
        if prediction is not None and Status(prediction["status"]).is_terminal:
            return json_response(prediction)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or await request.is_disconnected():
            break
        await state.events.wait(ticket, remaining)
    if prediction is None:
        raise NotFound(
            f"prediction {prediction_id!r} has not been received", prediction_id=prediction_id
        )
    return json_response(prediction)


async def _read_through(state: ReceiverState, prediction_id: str) -> None:
    """Not stored yet: store what the API holds; 404 only when the API does not know it."""
    assert state.read_through is not None
    timeout = state.settings.db_timeout
    if await call_within(timeout, get_prediction, state.engine, prediction_id) is not None:
        return
    if not await state.read_through.fetch_and_store(prediction_id):
        raise NotFound(
            f"prediction {prediction_id!r} is neither stored here nor known to the VLM Run API",
            prediction_id=prediction_id,
        )


def next_link(request: Request, cursor: str) -> str:
    """RFC 8288 `Link: <...>; rel="next"`: this request's URL with the cursor, no offset.

    The key never goes into a header a proxy may log: `access_token` is dropped.
    """
    url = request.url.remove_query_params([SKIP_PARAM, CURSOR_PARAM, ACCESS_TOKEN_PARAM])
    return f'<{url.include_query_params(**{CURSOR_PARAM: cursor})}>; rel="next"'


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _wait_for_terminal(
    request: Request, state: ReceiverState, fanout: FanOut, prediction_id: str, wait: float
) -> Response:
    """Long poll through the shared pump: no query and no CPU while waiting.

    The waiter is registered before the first read, so a completion committed in between
    resolves it. It resolves with the event's data (the same shape GET returns), or with
    None when the server starts shutting down; then, as after the wait, the current state
    is the answer.
    """
    engine, timeout = state.engine, state.settings.db_timeout
    waiter = await fanout.waiter(prediction_id)
    try:
        prediction = await call_within(timeout, get_prediction, engine, prediction_id)
        if prediction is not None and Status(prediction["status"]).is_terminal:
            return json_response(prediction)
        # A client that goes away ends the wait: its task must not outlive it for a minute.
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait((waiter, gone), timeout=wait, return_when=FIRST_COMPLETED)
        finally:
            gone.cancel()
        if waiter.done() and (completed := waiter.result()) is not None:
            return json_response(completed)
    finally:
        fanout.forget(prediction_id, waiter)
    prediction = await call_within(timeout, get_prediction, engine, prediction_id)
    if prediction is None:
        raise NotFound(
            f"prediction {prediction_id!r} has not been received", prediction_id=prediction_id
        )
    return json_response(prediction)


async def list_predictions_endpoint(request: Request) -> Response:
    """`GET /v1/predictions`: the API's shape (a plain list; `skip`/`limit`), newest first.

    Keyset pagination rides alongside: the next page's URL is in the `Link` header. `skip`
    counts from the cursor's position (from the newest row without one), and the next link
    continues after the last row returned, so the two compose.
    """
    state = receiver_state(request)
    query = request.query_params
    filters = PredictionFilters(
        status=status_param(query, "status"),
        domain=text_param(query, "domain"),
        submission_id=text_param(query, "submission_id"),
        created_after=timestamp_param(query, "created_after"),
        created_before=timestamp_param(query, "created_before"),
    )
    limit = _limit(request)
    skip = int_param(query, SKIP_PARAM, default=0, minimum=0, maximum=MAX_SKIP)
    cursor = query.get(CURSOR_PARAM)
    after = decode_prediction_cursor(cursor) if cursor is not None else None
    page, next_key = await call_within(
        state.settings.db_timeout,
        lambda: list_predictions(state.engine, filters, after, limit, skip=skip),
    )
    response = json_response(page)
    if next_key is not None:
        response.headers["Link"] = next_link(request, encode_prediction_cursor(next_key))
    return response


async def get_submission_endpoint(request: Request) -> Response:
    """`GET /v1/submissions/{id}`: the submission, its prediction and its delivery history."""
    state = receiver_state(request)
    submission_id: str = request.path_params["submission_id"]
    submission = await call_within(
        state.settings.db_timeout, get_submission, state.engine, submission_id
    )
    if submission is None:
        raise NotFound(f"submission {submission_id!r} is not recorded", submission_id=submission_id)
    return json_response(submission)


async def list_deliveries_endpoint(request: Request) -> Response:
    """`GET /v1/deliveries`: the audit log, newest first; raw bodies only on request."""
    state = receiver_state(request)
    query = request.query_params
    prediction_id = text_param(query, "prediction_id")
    submission_id = text_param(query, "submission_id")
    include_body = bool_param(query, "include_body")
    limit = _limit(request)
    cursor = query.get(CURSOR_PARAM)
    after = decode_delivery_cursor(cursor) if cursor is not None else None
    page, next_key = await call_within(
        state.settings.db_timeout,
        lambda: list_deliveries(
            state.engine,
            prediction_id=prediction_id,
            submission_id=submission_id,
            after=after,
            limit=limit,
            include_body=include_body,
        ),
    )
    body: DeliveryPage = {
        "data": page,
        "next_cursor": None if next_key is None else encode_delivery_cursor(next_key),
    }
    return json_response(body)


def lookup_routes() -> list[BaseRoute]:
    # The key is checked first: an anonymous caller learns nothing about parameters.
    guarded = [Middleware(RequireBearer)]
    return [
        DocumentedRoute(path, endpoint, middleware=guarded, strict_query=True, get=operation)
        for path, endpoint, operation in (
            ("/v1/predictions", list_predictions_endpoint, _LIST_PREDICTIONS),
            ("/v1/predictions/{prediction_id}", get_prediction_endpoint, _GET_PREDICTION),
            ("/v1/submissions/{submission_id}", get_submission_endpoint, _GET_SUBMISSION),
            ("/v1/deliveries", list_deliveries_endpoint, _LIST_DELIVERIES),
            ("/v1/events", stream_events, _STREAM_EVENTS),
        )
    ]


_LIST_PREDICTIONS = Operation(
    "listPredictions",
    "List predictions, newest first, in the API's shape",
    description="A plain JSON array, like the API's `GET /v1/predictions?skip=&limit=` (the "
    "public SDK's `predictions.list()` reads it unchanged). Ordered by (created_at, id) "
    'descending; both are immutable. When more rows follow, the `Link: <url>; rel="next"` '
    "header holds the next page's URL (same filters and limit, a `cursor`, no `skip`): "
    "following it while rows are inserted skips and repeats nothing. `skip` counts from the "
    "cursor's position (from the newest row without one), so `skip` and `cursor` compose.",
    query=PredictionsQuery,
    responses={
        200: Answer(
            "One page.",
            list[Prediction],
            headers={"Link": 'The next page, `<url>; rel="next"`; absent on the last page.'},
        )
    },
)
_GET_PREDICTION = Operation(
    "getPrediction",
    "One prediction, in the API's own shape",
    description="Reads like the API's `GET /v1/predictions/{id}`. With `wait`, the request is "
    "held until the prediction is terminal (completed or failed) or the wait ends, and then "
    "answers with whatever is stored.",
    query=PredictionQuery,
    responses={
        200: Answer("The prediction (possibly not terminal yet).", Prediction),
        404: "Not received, even after the wait.",
    },
)
_GET_SUBMISSION = Operation(
    "getSubmission",
    "A submission with its prediction and delivery history",
    responses={200: Answer("The submission.", Submission), 404: "No such submission recorded."},
)
_LIST_DELIVERIES = Operation(
    "listDeliveries",
    "The callback audit log, newest first",
    description="Pass `next_cursor` as `cursor` for the next page.",
    query=DeliveriesQuery,
    responses={200: Answer("One page.", DeliveryPage)},
)
_STREAM_EVENTS = Operation(
    "streamEvents",
    "Server-Sent Events: every stored change",
    description="Frames are `id: <seq>`, `event: prediction.<status>`, `data: <Prediction "
    "JSON>`; `: keep-alive` comments flow while idle. Resume with the `Last-Event-ID` header "
    "(it wins over the query) or `last_event_id`/`after`: no gap, no duplicate. Without any, "
    "the stream starts at the newest event. The stream never ends on its own.",
    query=EventsQuery,
    headers=EventsHeaders,
    responses={200: Answer("An endless text/event-stream.", str, ("text/event-stream",))},
)

"""The JSON the dashboard pages render: the overview, one prediction's history, one raw body.

Every value is data from the network; the pages put it in the DOM as text, never markup.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.responses import Response

from receiver.http.params import parse_int, status_param, text_param
from receiver.http.responses import json_response
from receiver.state import receiver_state
from vlmhooks.errors import NotFound
from vlmhooks.forward.registry import forwarding_status
from vlmhooks.reads.activity import (
    OverviewFilters,
    callbacks_per_minute,
    count_by_domain,
    current_positions,
    latest_predictions,
    latest_refusals,
)
from vlmhooks.reads.bounded import call_within
from vlmhooks.reads.history import delivery_body, prediction_history
from vlmhooks.reads.pagination import MAX_ROW_ID
from vlmhooks.reads.queries import count_predictions_by_status
from vlmhooks.reads.usage import credits_by_domain

__all__ = ["delivery_body_data", "overview_data", "prediction_data", "read_overview"]

OVERVIEW_PREDICTIONS = 50
OVERVIEW_REFUSALS = 20
CALLBACK_MINUTES = 60
CREDITS_WINDOW = timedelta(days=7)
NO_STORE = {"Cache-Control": "no-store"}


def _private(body: Any) -> Response:
    response = json_response(body)
    response.headers.update(NO_STORE)  # prediction data: never in a shared or disk cache
    return response


def _credits(today: dict[str | None, int], week: dict[str | None, int]) -> list[dict[str, Any]]:
    domains = sorted(week.keys() | today.keys(), key=lambda d: (-week.get(d, 0), d or ""))
    return [
        {"domain": domain, "today": today.get(domain, 0), "last_7_days": week.get(domain, 0)}
        for domain in domains
    ]


def read_overview(engine: Engine, filters: OverviewFilters, now: datetime) -> dict[str, Any]:
    """Everything `/dashboard` shows, plus the stream positions read before any of it.

    `forwarding` has the shape of `GET /v1/forwarding`'s answer.
    """
    with engine.connect() as connection:
        positions = current_positions(connection)
        by_domain = count_by_domain(connection)
        per_minute = callbacks_per_minute(connection, now, CALLBACK_MINUTES)
        predictions = latest_predictions(connection, filters, OVERVIEW_PREDICTIONS)
        refused = latest_refusals(connection, OVERVIEW_REFUSALS)
        # The very read behind `GET /v1/forwarding`, so the panel and the API cannot disagree
        # about a destination, and its masking of credentials is the one tested there.
        destinations = forwarding_status(connection, now)
    by_status = count_predictions_by_status(engine)
    start_of_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    credits = _credits(
        credits_by_domain(engine, since=start_of_day),
        credits_by_domain(engine, since=now - CREDITS_WINDOW),
    )
    return {
        "now": now.isoformat().replace("+00:00", "Z"),
        "positions": {"event_seq": positions.event_seq, "delivery_id": positions.delivery_id},
        "filters": {
            "status": None if filters.status is None else filters.status.value,
            "domain": filters.domain,
            "q": filters.search,
        },
        "counts": {
            "total": sum(by_status.values()),
            "by_status": by_status,
            "by_domain": [{"domain": domain, "count": count} for domain, count in by_domain],
        },
        "callbacks_per_minute": per_minute,
        "credits": credits,
        "predictions": predictions,
        "refused": refused,
        "forwarding": {"destinations": destinations},
    }


def _optional_text(request: Request, name: str) -> str | None:
    # A form's "all" choice submits an empty value: that is no filter, not a bad one.
    value = text_param(request.query_params, name)
    return None if value is None else (value.strip() or None)


async def overview_data(request: Request) -> Response:
    """`GET /dashboard/data/overview?status=&domain=&q=`."""
    state = receiver_state(request)
    query = request.query_params
    status = status_param(query, "status") if query.get("status") else None
    filters = OverviewFilters(
        status=status,
        domain=_optional_text(request, "domain"),
        search=_optional_text(request, "q"),
    )
    now = datetime.fromtimestamp(state.clock(), UTC)
    overview = await call_within(
        state.settings.db_timeout, read_overview, state.engine, filters, now
    )
    return _private(overview)


async def prediction_data(request: Request) -> Response:
    """`GET /dashboard/data/predictions/{prediction_id}`: the detail page's history."""
    state = receiver_state(request)
    prediction_id: str = request.path_params["prediction_id"]
    history = await call_within(
        state.settings.db_timeout, _positions_then_history, state.engine, prediction_id
    )
    if history is None:
        raise NotFound(
            f"prediction {prediction_id!r} has not been received", prediction_id=prediction_id
        )
    return _private(history)


def _positions_then_history(engine: Engine, prediction_id: str) -> dict[str, Any] | None:
    # Positions first, so the page's stream, opened from them, misses no later change.
    with engine.connect() as connection:
        positions = current_positions(connection)
    history = prediction_history(engine, prediction_id)
    if history is None:
        return None
    return {
        **history,
        "positions": {"event_seq": positions.event_seq, "delivery_id": positions.delivery_id},
    }


async def delivery_body_data(request: Request) -> Response:
    """`GET /dashboard/data/deliveries/{delivery_id}`: one delivery with its raw body."""
    state = receiver_state(request)
    raw_id: str = request.path_params["delivery_id"]
    delivery_id = parse_int("delivery_id", raw_id, minimum=1, maximum=MAX_ROW_ID)
    delivery = await call_within(
        state.settings.db_timeout, delivery_body, state.engine, delivery_id
    )
    if delivery is None:
        raise NotFound(f"delivery {delivery_id} is not recorded", delivery_id=delivery_id)
    return _private(delivery)

"""`GET /v1/usage`: the usage ledger; and the credits counter `/metrics` reads at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, get_args

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from pydantic import ConfigDict, Field, with_config
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from typing_extensions import TypedDict

from receiver.http.auth import RequireBearer
from receiver.http.params import bad_parameter, int_param, timestamp_param
from receiver.http.responses import json_response
from receiver.http.routing import Answer, DocumentedRoute, Operation
from receiver.state import receiver_state
from vlmhooks.reads.bounded import call_within
from vlmhooks.reads.usage import (
    DEFAULT_USAGE_GROUPS,
    MAX_USAGE_GROUPS,
    UsageGroupBy,
    UsageLedger,
    usage_ledger,
)

__all__ = ["UNKNOWN_DOMAIN", "CreditsByDomain", "usage_endpoint", "usage_routes"]

GROUP_BY_CHOICES: tuple[UsageGroupBy, ...] = get_args(UsageGroupBy)
UNKNOWN_DOMAIN = "unknown"


def _group_by(request: Request) -> UsageGroupBy:
    raw = request.query_params.get("group_by", "domain")
    for choice in GROUP_BY_CHOICES:
        if raw == choice:
            return choice
    raise bad_parameter("group_by", f"expected one of {', '.join(GROUP_BY_CHOICES)}, got {raw!r}")


async def usage_endpoint(request: Request) -> Response:
    """`GET /v1/usage?group_by=domain|day|submission&since=&until=&limit=`."""
    state = receiver_state(request)
    query = request.query_params
    group_by = _group_by(request)
    since = timestamp_param(query, "since")
    until = timestamp_param(query, "until")
    # since >= until is an empty window, not an error: the ledger of nothing is zeros.
    limit = int_param(
        query, "limit", default=DEFAULT_USAGE_GROUPS, minimum=1, maximum=MAX_USAGE_GROUPS
    )
    ledger = await call_within(
        state.settings.db_timeout,
        lambda: usage_ledger(state.engine, group_by, since=since, until=until, limit=limit),
    )
    return json_response(ledger.model_dump(mode="json"))


class CreditsByDomain(Collector):
    """Counter `vlmhooks_credits_used_total{domain}`: credits of every stored prediction.

    Read from the database at scrape time, like `vlmhooks_predictions`, so every receiver
    process reports the same database-wide total and a restart resets nothing.
    """

    def __init__(self, credits: dict[str | None, int]) -> None:
        self.credits = credits

    def collect(self) -> Iterator[CounterMetricFamily]:
        counter = CounterMetricFamily(
            "vlmhooks_credits_used",
            "Credits used by stored predictions (usage.credits_used), by domain",
            labels=["domain"],
        )
        by_label: dict[str, int] = {}
        for domain, credits in self.credits.items():
            label = UNKNOWN_DOMAIN if domain is None else domain
            by_label[label] = by_label.get(label, 0) + credits
        for label, credits in sorted(by_label.items()):
            counter.add_metric([label], credits)
        yield counter


@with_config(ConfigDict(use_attribute_docstrings=True))
class UsageQuery(TypedDict, total=False):
    group_by: UsageGroupBy
    """How to group (default domain)."""
    since: datetime
    """created_at >= this (ISO 8601; UTC if no offset)."""
    until: datetime
    """created_at < this (ISO 8601; UTC if no offset)."""
    limit: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_USAGE_GROUPS,
            description=f"At most this many groups (default {DEFAULT_USAGE_GROUPS}).",
        ),
    ]


def usage_routes() -> list[BaseRoute]:
    return [
        DocumentedRoute(
            "/v1/usage",
            usage_endpoint,
            middleware=[Middleware(RequireBearer)],
            strict_query=True,
            get=Operation(
                "getUsage",
                "The usage ledger: credits and elements summed from stored usage",
                description="Grouped by domain, by UTC day or by submission, over the "
                "predictions created in [since, until). Rows are ordered by key.",
                query=UsageQuery,
                responses={200: Answer("The ledger.", UsageLedger)},
            ),
        )
    ]

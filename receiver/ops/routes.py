"""Operations routes: the index, liveness (also as the API's `/v1/health`), readiness,
Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from receiver.api.usage import CreditsByDomain
from receiver.http.auth import ACCESS_TOKEN_PARAM, RequireBearer
from receiver.http.problems import problem_response
from receiver.http.responses import json_response
from receiver.http.routing import Answer, DocumentedRoute, Operation
from receiver.http.shapes import Health, Index, Ready
from receiver.openapi.document import openapi_document
from receiver.ops.scrape_gauges import DatabaseGauges
from receiver.state import receiver_state
from schemas.contract import utc_now
from vlmhooks.errors import StorageUnavailable
from vlmhooks.forward.metrics import ForwardBacklogCollector, read_backlog
from vlmhooks.reads.bounded import call_within
from vlmhooks.reads.overdue import count_overdue_submissions
from vlmhooks.reads.queries import count_predictions_by_status
from vlmhooks.reads.usage import credits_by_domain

__all__ = [
    "API_VERSION",
    "INDEX",
    "PredictionsByStatus",
    "healthz",
    "metrics",
    "openapi_info",
    "openapi_json",
    "ops_routes",
    "readyz",
]

API_VERSION = "0.1.0"


INDEX: Index = {
    "service": "vlmhooks receiver",
    "links": {
        "dashboard": "/dashboard",
        "openapi": "/openapi.json",
        "health": "/healthz",
        "ready": "/readyz",
    },
}


async def index(_request: Request) -> Response:
    """`GET /`: a newcomer's first request lands on links, not on a 404."""
    return json_response(INDEX)


async def healthz(_request: Request) -> Response:
    """The process is up and serving; says nothing about the database."""
    body: Health = {"status": "ok"}
    return json_response(body)


async def readyz(request: Request) -> Response:
    """The database answers, accepts writes, and its schema is at the migrations' head;
    else 503. Answered within VLMHOOKS_DB_TIMEOUT, both probes together, however the
    database hangs: the orchestrator retries."""
    state = receiver_state(request)
    timeout = state.settings.db_timeout
    deadline = time.monotonic() + timeout
    try:
        current, head = await call_within(timeout, _revisions, state.engine)
    except (StorageUnavailable, OSError) as exc:
        return problem_response(
            503,
            "Not ready",
            f"the database is unreachable: {_cause_name(exc)}",
            slug="not-ready",
        )
    if current != head:
        return problem_response(
            503,
            "Not ready",
            f"the schema is at revision {current or 'none'}, migrations are at {head}; "
            "run `vlm-receiver db upgrade`",
            slug="not-ready",
            current_revision=current,
            head_revision=head,
        )
    try:
        await call_within(max(0.0, deadline - time.monotonic()), _probe_write, state.engine)
    except (StorageUnavailable, OSError) as exc:
        # A receiver that cannot write would answer every callback 503: not ready.
        return problem_response(
            503,
            "Not ready",
            f"the database refuses writes: {_cause_name(exc)}",
            slug="not-ready",
        )
    body: Ready = {"status": "ready", "revision": current}
    return json_response(body)


def _cause_name(exc: BaseException) -> str:
    """What failed, by type (`OperationalError`, `TimeoutError`): never the driver's message,
    which may name hosts and users."""
    return type(exc.__cause__ or exc).__name__


def _revisions(engine: Engine) -> tuple[str | None, str | None]:
    """The database's schema revision and the migrations' head."""
    # Imported on the first probe, in this worker thread, not with the app: Alembic (with
    # Mako and Pygments) costs a cold start more than everything a callback needs.
    from vlmhooks.store import migrate

    return migrate.current_revision(engine), migrate.head_revision()


def _probe_write(engine: Engine) -> None:
    """A write that changes nothing, rolled back: refused by a read-only SQLite file or
    connection, a PostgreSQL read-only transaction (`default_transaction_read_only`, a hot
    standby), each checked before any row is touched.
    """
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            connection.exec_driver_sql("DELETE FROM alembic_version WHERE 1 = 0")
        finally:
            transaction.rollback()


class PredictionsByStatus(Collector):
    """Gauge `vlmhooks_predictions{status}` from counts read at scrape time."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "vlmhooks_predictions", "Stored predictions, by status", labels=["status"]
        )
        for status, count in sorted(self.counts.items()):
            gauge.add_metric([status], count)
        yield gauge


async def metrics(request: Request) -> Response:
    """Prometheus text: this process's counters plus database-wide gauges; when the database
    does not answer, the process's own counters and `vlmhooks_database_ready 0`."""
    state = receiver_state(request)
    # The database gauges are shared by every process, so they live in a per-scrape registry
    # rather than in the process's own.
    scrape = CollectorRegistry(auto_describe=False)
    now = utc_now()
    settings = state.settings
    timeout = settings.db_timeout
    try:
        counts = await call_within(timeout, count_predictions_by_status, state.engine)
        credits = await call_within(timeout, credits_by_domain, state.engine)
        forward_backlog = await call_within(timeout, read_backlog, state.engine)
        overdue = await call_within(
            timeout,
            lambda: count_overdue_submissions(
                state.engine,
                now,
                overdue_after=settings.overdue_after,
                horizon=timedelta(seconds=settings.token_max_age),
            ),
        )
    except (StorageUnavailable, OSError):
        scrape.register(DatabaseGauges(ready=False, overdue=None))
    else:
        scrape.register(PredictionsByStatus(counts))
        scrape.register(CreditsByDomain(credits))
        scrape.register(ForwardBacklogCollector(forward_backlog, now))
        scrape.register(DatabaseGauges(ready=True, overdue=overdue))
    body = generate_latest(state.metrics.registry) + generate_latest(scrape)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def openapi_info(*, auth_required: bool) -> dict[str, Any]:
    """The document's `info`: what the service is, and how this deployment is reached."""
    access = (
        "Lookup routes and /metrics need `Authorization: Bearer <key>` (any key of "
        f"VLMHOOKS_API_KEYS), or `?{ACCESS_TOKEN_PARAM}=<key>` on GET for browsers' "
        "EventSource (it can end up in logs: prefer the header)."
        if auth_required
        else "This deployment serves reads anonymously (VLMHOOKS_ALLOW_ANONYMOUS_READS=true)."
    )
    return {
        "title": "vlmhooks receiver",
        "version": API_VERSION,
        "description": "Receives VLM Run prediction callbacks and serves them back. " + access,
    }


async def openapi_json(request: Request) -> Response:
    """The OpenAPI 3.1 document, collected from this app's routes; security reflects whether
    this deployment requires a key."""
    auth_required = bool(receiver_state(request).api_keys)
    info = openapi_info(auth_required=auth_required)
    routes = request.app.routes
    return json_response(openapi_document(routes, info=info, auth_required=auth_required))


def _open(path: str, endpoint: Any, operation: Operation) -> DocumentedRoute:
    return DocumentedRoute(path, endpoint, get=operation)


def ops_routes() -> list[BaseRoute]:
    ready = Answer("Ready.", Ready)
    return [
        _open("/", index, Operation("index", _INDEX, {200: Answer("The index.", Index)})),
        _open("/healthz", healthz, Operation("healthz", "Liveness: the process is up", _UP)),
        # The public SDK calls `GET <base_url>/health` with its key when a client is made,
        # to validate the key: so this one is authenticated, unlike /healthz.
        DocumentedRoute(
            "/v1/health",
            healthz,
            middleware=[Middleware(RequireBearer)],
            strict_query=True,
            get=Operation(
                "apiHealth",
                "The API's health check: the process is up and the key is valid",
                _UP,
                description="What the public `vlmrun` SDK calls when a client is made "
                "(`VLMRun(base_url=<receiver>/v1)`), to validate its key; `/healthz` is the "
                "unauthenticated liveness probe.",
            ),
        ),
        _open(
            "/readyz",
            readyz,
            Operation(
                "readyz",
                "Readiness: the database answers and migrations are at head",
                {200: ready, 503: "Database unreachable, refusing writes, or not at head."},
            ),
        ),
        DocumentedRoute(
            "/metrics",
            metrics,
            middleware=[Middleware(RequireBearer)],
            strict_query=True,
            get=Operation(
                "metrics",
                "Prometheus metrics",
                {200: Answer("Prometheus text exposition.", str, ("text/plain",))},
                description="Callbacks by verdict, ingest latency, group-commit batch sizes "
                "(this process), predictions by status and credits used by domain (the whole "
                "database). Needs a lookup API key, like the lookup routes, unless anonymous "
                "reads are enabled.",
            ),
        ),
        _open(
            "/openapi.json",
            openapi_json,
            Operation("openapi", "This document", {200: Answer("OpenAPI 3.1.", dict[str, Any])}),
        ),
    ]


_INDEX = "A small JSON index: links to the dashboard, this document, probes"
_UP = {200: Answer("Up.", Health)}

"""Reading predictions back, and waiting for them to finish.

Two sources answer in the receiver's own shape (`GET /v1/predictions/{id}`): the database
(``DATABASE_URL``) and a receiver's lookup API (``--receiver-url``, which beats the database,
or ``VLMHOOKS_RECEIVER_URL``, which does not). Without either, the VLM Run API answers in
its own shape; `describe_source` says which one was read, so that is never silent. Each
source also lists its predictions newest first (``recent``, for `vlm-submit list`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from schemas.enums import Status
from submit.client import ReceiverClient, VlmRunClient, client_from_settings
from submit.errors import ConfigError, NotFound
from vlmhooks.reads.pagination import MAX_LIMIT
from vlmhooks.reads.queries import (
    PredictionFilters,
    get_prediction,
    get_submission,
    list_deliveries,
    list_predictions,
)
from vlmhooks.settings import Settings
from vlmhooks.store.db import make_engine
from vlmhooks.store.tables import SUBMISSION

__all__ = [
    "API_SCAN_LIMIT",
    "DEFAULT_POLL_INTERVAL_SECONDS",
    "LONG_POLL_SECONDS",
    "RECEIVER_URL_ENV",
    "ApiSource",
    "DatabaseSource",
    "PredictionSource",
    "ReceiverSource",
    "WaitOutcome",
    "configured_engine",
    "describe_source",
    "is_terminal",
    "open_source",
    "reading_source",
    "require_tables",
    "wait_for_predictions",
]

RECEIVER_URL_ENV = "VLMHOOKS_RECEIVER_URL"
# One long-poll never holds the receiver longer than this (its ceiling is 60 s); ask again.
LONG_POLL_SECONDS = 25.0
DEFAULT_POLL_INTERVAL_SECONDS = 0.5
# The API filters nothing: its list is scanned here, this many predictions at most.
API_SCAN_LIMIT = 1000
API_PAGE_SIZE = 100

SUBMISSION_TABLE = SUBMISSION.name


class PredictionSource(Protocol):
    """Where stored predictions are read from; ``name`` says which, for people."""

    name: str

    def prediction(self, prediction_id: str, *, wait: float = 0) -> dict[str, Any] | None:
        """The prediction as JSON, or None when not stored yet; may block up to ``wait``
        seconds for it to become terminal."""
        ...

    def recent(self, filters: PredictionFilters, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` predictions matching ``filters`` (status, domain, submission id),
        newest first."""
        ...


@dataclass
class DatabaseSource:
    """The receiver's database, read with the receiver's own queries (`vlmhooks.reads.queries`)."""

    engine: Engine
    name: str = field(default="database", init=False)

    def prediction(self, prediction_id: str, *, wait: float = 0) -> dict[str, Any] | None:
        return get_prediction(self.engine, prediction_id)

    def recent(self, filters: PredictionFilters, limit: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after = None
        while len(found) < limit:
            page, after = list_predictions(
                self.engine, filters, after, min(limit - len(found), MAX_LIMIT)
            )
            found.extend(page)
            if after is None:
                break
        return found

    def submission(self, submission_id: str) -> dict[str, Any] | None:
        """As `GET /v1/submissions/{id}`: the submission, its prediction, recent deliveries."""
        # A TypedDict is a dict at run time; callers print it as JSON.
        return cast(dict[str, Any] | None, get_submission(self.engine, submission_id))

    def deliveries(self, submission_id: str) -> list[dict[str, Any]]:
        """Every delivery recorded for the submission, oldest first (no bodies)."""
        found: list[dict[str, Any]] = []
        after = None
        while True:
            page, after = list_deliveries(
                self.engine,
                prediction_id=None,
                submission_id=submission_id,
                after=after,
                limit=MAX_LIMIT,
                include_body=False,
            )
            found.extend(cast(list[dict[str, Any]], page))
            if after is None:
                return found[::-1]

    def find(self, identifier: str) -> dict[str, Any] | None:
        """A prediction id, or a submission id: answered with its prediction once stored, else
        ``{"submission": ..., "prediction": null}``."""
        body = self.prediction(identifier)
        if body is not None:
            return body
        submission = self.submission(identifier)
        if submission is None:
            return None
        stored: dict[str, Any] | None = submission["prediction"]
        return stored if stored is not None else {"submission": submission, "prediction": None}


@dataclass
class ReceiverSource:
    """A receiver's lookup API; ``wait`` becomes its long-poll."""

    client: ReceiverClient
    name: str = field(default="receiver", init=False)

    def prediction(self, prediction_id: str, *, wait: float = 0) -> dict[str, Any] | None:
        try:
            return self.client.get_prediction(prediction_id, wait=min(wait, LONG_POLL_SECONDS))
        except NotFound:
            return None

    def recent(self, filters: PredictionFilters, limit: int) -> list[dict[str, Any]]:
        query = {
            name: value
            for name, value in (
                ("status", filters.status.value if filters.status else None),
                ("domain", filters.domain),
                ("submission_id", filters.submission_id),
            )
            if value is not None
        }
        pages = self.client.iter_predictions(page_size=min(limit, MAX_LIMIT), filters=query)
        return list(islice(pages, limit))


@dataclass
class ApiSource:
    """The VLM Run API itself: what it holds now, stored by a receiver or not."""

    client: VlmRunClient
    name: str = field(default="VLM Run API", init=False)

    def prediction(self, prediction_id: str, *, wait: float = 0) -> dict[str, Any] | None:
        return self.client.get_prediction(prediction_id).to_wire()

    def recent(self, filters: PredictionFilters, limit: int) -> list[dict[str, Any]]:
        """Filtered here (the API's list takes only skip/limit), over its newest
        ``API_SCAN_LIMIT`` predictions; a submission id is ours, the API never heard of it."""
        if filters.submission_id is not None:
            raise ConfigError(
                "--submission-id needs the receiver's records: set DATABASE_URL or "
                f"--receiver-url/{RECEIVER_URL_ENV}"
            )
        found: list[dict[str, Any]] = []
        for skip in range(0, API_SCAN_LIMIT, API_PAGE_SIZE):
            page = self.client.list_predictions(skip=skip, limit=API_PAGE_SIZE)
            for prediction in page:
                body = prediction.to_wire()
                if _matches(body, filters):
                    found.append(body)
            if len(found) >= limit or len(page) < API_PAGE_SIZE:
                break
        return found[:limit]


def _matches(body: dict[str, Any], filters: PredictionFilters) -> bool:
    if filters.status is not None and body.get("status") != filters.status.value:
        return False
    return filters.domain is None or body.get("domain") == filters.domain


def describe_source(source: PredictionSource) -> str:
    """One line for people: where the answer came from (and, for the API, why)."""
    if isinstance(source, DatabaseSource):
        return f"read from the database ({source.engine.url.render_as_string(hide_password=True)})"
    if isinstance(source, ReceiverSource):
        return f"read from the receiver at {source.client.base_url}"
    if isinstance(source, ApiSource):
        return (
            f"read from the VLM Run API at {source.client.base_url}: neither DATABASE_URL nor "
            f"--receiver-url/{RECEIVER_URL_ENV} is set, so this is the API's shape (no "
            "`vlmhooks` fields)"
        )
    return f"read from {source.name}"


def is_terminal(body: dict[str, Any]) -> bool:
    try:
        return Status(str(body.get("status"))).is_terminal
    except ValueError:
        return False


@dataclass(frozen=True)
class WaitOutcome:
    """The latest body read for each prediction, and the ids still not terminal."""

    latest: dict[str, dict[str, Any]]
    pending: list[str]


def wait_for_predictions(
    source: PredictionSource,
    prediction_ids: Iterable[str],
    *,
    timeout: float,
    poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitOutcome:
    """Read each prediction until it is terminal or ``timeout`` seconds have passed; a source
    that long-polls is handed the time left, the others are asked again every ``poll_interval``.
    """
    deadline = clock() + timeout
    latest: dict[str, dict[str, Any]] = {}
    pending = list(dict.fromkeys(prediction_ids))
    while pending and clock() < deadline:
        for prediction_id in list(pending):
            remaining = deadline - clock()
            if remaining <= 0:
                break
            body = source.prediction(prediction_id, wait=remaining)
            if body is not None:
                latest[prediction_id] = body
                if is_terminal(body):
                    pending.remove(prediction_id)
        if pending:
            sleep(max(0.0, min(poll_interval, deadline - clock())))
    return WaitOutcome(latest, pending)


# -- choosing and opening a source ---------------------------------------------------------


def configured_engine(settings: Settings, *, immediate_writes: bool = False) -> Engine | None:
    """An engine when ``DATABASE_URL`` is set explicitly; None means "no database"."""
    if "database_url" not in settings.model_fields_set:
        return None
    engine = make_engine(settings.database_url, immediate_writes=immediate_writes)
    try:
        require_tables(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def require_tables(engine: Engine) -> None:
    """A ``ConfigError`` saying what to run when the database has no vlmhooks schema."""
    if not sa.inspect(engine).has_table(SUBMISSION_TABLE):
        raise ConfigError(
            "the database at DATABASE_URL has no vlmhooks tables: run `vlm-receiver db upgrade`"
        )


@contextmanager
def open_source(
    settings: Settings,
    *,
    engine: Engine | None = None,
    receiver_url: str | None = None,
    api: VlmRunClient | None = None,
) -> Iterator[PredictionSource]:
    """The receiver at ``receiver_url`` when given (an explicit choice beats the database),
    else the database when given, else the receiver at $VLMHOOKS_RECEIVER_URL, else the VLM
    Run API (``api``, or a client made from ``settings``). Clients it opens, it closes."""
    if engine is not None and not receiver_url:
        yield DatabaseSource(engine)
        return
    receiver_url = receiver_url or os.environ.get(RECEIVER_URL_ENV)
    if receiver_url:
        with ReceiverClient(receiver_url) as receiver:
            yield ReceiverSource(receiver)
        return
    if api is not None:
        yield ApiSource(api)
        return
    with client_from_settings(settings) as client:
        yield ApiSource(client)


@contextmanager
def reading_source(settings: Settings, receiver_url: str | None) -> Iterator[PredictionSource]:
    """The source `vlm-submit get` and `list` read, as `open_source` picks it, with the
    database opened from ``DATABASE_URL`` (and disposed after) unless an explicit
    ``receiver_url`` was given: then the database is not even opened."""
    engine = None if receiver_url else configured_engine(settings)
    try:
        with open_source(settings, engine=engine, receiver_url=receiver_url) as source:
            yield source
    finally:
        if engine is not None:
            engine.dispose()

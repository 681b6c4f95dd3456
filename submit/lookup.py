"""Reading predictions back, and waiting for them to finish.

Two sources answer in the receiver's own shape (`GET /v1/predictions/{id}`): the database
(``DATABASE_URL``) and a receiver's lookup API (``--receiver-url``, which beats the database,
or ``VLMHOOKS_RECEIVER_URL``, which does not). Without either, the VLM Run API answers in
its own shape; `describe_source` says which one was read, so that is never silent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from schemas.enums import Status
from submit.client import ReceiverClient, VlmRunClient, client_from_settings
from submit.errors import ConfigError, NotFound
from vlmhooks.reads.pagination import MAX_LIMIT
from vlmhooks.reads.queries import get_prediction, get_submission, list_deliveries
from vlmhooks.settings import Settings
from vlmhooks.store.db import make_engine
from vlmhooks.store.tables import SUBMISSION

__all__ = [
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
    "require_tables",
    "wait_for_predictions",
]

RECEIVER_URL_ENV = "VLMHOOKS_RECEIVER_URL"
# One long-poll never holds the receiver longer than this (its ceiling is 60 s); ask again.
LONG_POLL_SECONDS = 25.0
DEFAULT_POLL_INTERVAL_SECONDS = 0.5

SUBMISSION_TABLE = SUBMISSION.name


class PredictionSource(Protocol):
    """Where stored predictions are read from; ``name`` says which, for people."""

    name: str

    def prediction(self, prediction_id: str, *, wait: float = 0) -> dict[str, Any] | None:
        """The prediction as JSON, or None when not stored yet; may block up to ``wait``
        seconds for it to become terminal."""
        ...


@dataclass
class DatabaseSource:
    """The receiver's database, read with the receiver's own queries (`vlmhooks.reads.queries`)."""

    engine: Engine
    name: str = field(default="database", init=False)

    def prediction(self, prediction_id: str, *, wait: float = 0) -> dict[str, Any] | None:
        return get_prediction(self.engine, prediction_id)

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


@dataclass
class ApiSource:
    """The VLM Run API itself: what it holds now, stored by a receiver or not."""

    client: VlmRunClient
    name: str = field(default="VLM Run API", init=False)

    def prediction(self, prediction_id: str, *, wait: float = 0) -> dict[str, Any] | None:
        return self.client.get_prediction(prediction_id).to_wire()


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

"""Send many prediction requests, each with its own signed callback URL and Submission row.

Work is spread over a thread pool; only ``concurrency`` requests are in flight, and a
request's images are read and encoded by the worker that sends it, so memory stays flat
however many files a submission names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from schemas.contract import (
    GenerationConfig,
    PredictionRequest,
    PredictionResponse,
    RequestMetadata,
    utc_now,
)
from schemas.enums import Domain
from submit.client import VlmRunClient
from submit.errors import ApiError, AuthenticationError, ConfigError, ImageError
from submit.images import ImageSource
from vlmhooks import tracing
from vlmhooks.errors import VlmhooksError
from vlmhooks.store.ingest_one import ingest_prediction
from vlmhooks.store.tables import SUBMISSION
from vlmhooks.trust.tokens import CallbackTokens, mint_callback_url, new_submission_id

__all__ = ["DEFAULT_CONCURRENCY", "SubmitItem", "SubmitResult", "Submitter"]

DEFAULT_CONCURRENCY = 8
logger = logging.getLogger("vlmhooks.submit.submitter")


@dataclass(frozen=True)
class SubmitItem:
    """The images of one request, not yet read; ``label`` names it in messages and output."""

    images: Sequence[ImageSource]

    @property
    def label(self) -> str:
        first = self.images[0].label if self.images else "<no images>"
        return first if len(self.images) <= 1 else f"{first} (+{len(self.images) - 1} more)"


@dataclass(frozen=True)
class SubmitResult:
    """What became of one item (``index`` is its input position): ids, the API's answer, or
    the error that stopped it."""

    label: str
    submission_id: str
    request_id: str
    index: int = 0
    callback_url: str | None = None
    prediction_id: str | None = None
    status: str | None = None
    error: str | None = None
    prediction: PredictionResponse | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


class Submitter:
    """Sends ``SubmitItem``s for one domain and prompt; records them when given an engine.

    ``tokens`` and ``public_url`` together mint a callback URL per request; without them a
    batch request goes out with no callback (``reconcile`` can still poll it).
    """

    def __init__(
        self,
        client: VlmRunClient,
        *,
        domain: Domain | str,
        prompt: str | None = None,
        json_schema: dict[str, Any] | None = None,
        batch: bool = True,
        engine: Engine | None = None,
        tokens: CallbackTokens | None = None,
        public_url: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        metadata: RequestMetadata | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if (tokens is None) != (public_url is None):
            raise ConfigError("callback URLs need both the token keys and VLMHOOKS_PUBLIC_URL")
        self.client = client
        self.domain = Domain(domain)
        self.prompt = prompt
        self.json_schema = json_schema
        self.batch = batch
        self.engine = engine
        self.tokens = tokens
        self.public_url = public_url
        self.concurrency = concurrency
        self.metadata = metadata or RequestMetadata()
        self._clock = clock

    def submit(self, items: Iterable[SubmitItem]) -> Iterator[SubmitResult]:
        """Send every item; yield results as they complete (not in input order).

        An ``AuthenticationError`` stops the run: every later request would fail the same way.
        """
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="vlm-submit") as pool:
            in_flight: set[Future[SubmitResult]] = set()
            try:
                for index, item in enumerate(items):
                    # Keep the pool fed, never ahead: a lazy `items` stays lazy.
                    if len(in_flight) >= self.concurrency:
                        done, in_flight = _wait_some(in_flight)
                        yield from (future.result() for future in done)
                    in_flight.add(pool.submit(self.submit_one, item, index=index))
                while in_flight:
                    done, in_flight = _wait_some(in_flight)
                    yield from (future.result() for future in done)
            finally:
                for future in in_flight:
                    future.cancel()

    def submit_one(self, item: SubmitItem, *, index: int = 0) -> SubmitResult:
        """Encode, record, send and store one item; API and image errors end up in the result.

        With tracing on, inside a span whose trace context the Submission row keeps, so the
        callback's span, whenever it comes, links back to it.
        """
        if not tracing.enabled:
            return self._submit_one(item, index)
        attributes = {"vlmhooks.domain": self.domain.value, "vlmhooks.batch": self.batch}
        with tracing.start_span("vlmhooks.submit", attributes=attributes) as span:
            result = self._submit_one(item, index)
            span.set_attribute("submission.id", result.submission_id)
            if result.prediction_id is not None:
                span.set_attribute("prediction.id", result.prediction_id)
            if result.error is not None:
                from opentelemetry.trace import StatusCode

                span.set_status(StatusCode.ERROR, result.error)
        return result

    def _submit_one(self, item: SubmitItem, index: int) -> SubmitResult:
        submission_id = new_submission_id()
        # Sync requests get no callback: the answer is the result, and a callback would
        # only race the synchronous store with a duplicate delivery.
        callback_url = self._callback_url(submission_id) if self.batch else None
        base = SubmitResult(
            label=item.label, submission_id=submission_id, request_id="", index=index
        )
        try:
            images = [image.to_request_value() for image in item.images]
        except ImageError as exc:
            return replace(base, error=str(exc))
        request = PredictionRequest(
            images=images,
            domain=self.domain,
            metadata=self.metadata,
            config=GenerationConfig(prompt=self.prompt, json_schema=self.json_schema),
            callback_url=callback_url,
            batch=self.batch,
            created_at=self._clock(),
        )
        base = replace(base, request_id=request.id, callback_url=callback_url)
        # Recorded before sending: a fast callback must find its submission row.
        self._record(request, submission_id, len(item.images))
        sent_at = self._clock()
        try:
            prediction = self.client.generate(request)
        except ApiError as exc:
            self._store_answer(submission_id, sent_at, error=str(exc))
            if isinstance(exc, AuthenticationError):
                raise
            return replace(base, error=str(exc))
        status = prediction.status.value
        self._store_answer(submission_id, sent_at, prediction_id=prediction.id, status=status)
        result = replace(base, prediction_id=prediction.id, status=status, prediction=prediction)
        if not self.batch and self.engine is not None:
            try:
                outcome = ingest_prediction(
                    self.engine, prediction, submission_id=submission_id, source="sync"
                )
            except VlmhooksError as exc:
                return replace(result, error=f"the result could not be stored: {exc.detail}")
            result = replace(result, status=outcome.status)
        return result

    def _callback_url(self, submission_id: str) -> str | None:
        if self.tokens is None or self.public_url is None:
            return None
        return mint_callback_url(self.public_url, self.tokens, submission_id)

    def _record(self, request: PredictionRequest, submission_id: str, image_count: int) -> None:
        if self.engine is None:
            return
        now = self._clock()
        with self.engine.begin() as connection:
            connection.execute(
                SUBMISSION.insert().values(
                    id=submission_id,
                    request_id=request.id,
                    domain=request.domain.value,
                    prompt=request.config.prompt,
                    json_schema=request.config.json_schema,
                    callback_url=request.callback_url,
                    batch=request.batch,
                    image_count=image_count,
                    created_at=request.created_at,
                    updated_at=now,
                    trace_context=tracing.current_trace_context(),
                )
            )

    def _store_answer(
        self,
        submission_id: str,
        sent_at: datetime,
        *,
        prediction_id: str | None = None,
        status: str | None = None,
        error: str | None = None,
    ) -> None:
        if self.engine is None:
            return
        with self.engine.begin() as connection:
            # The callback may have landed first and moved these forward: only fill gaps.
            connection.execute(
                SUBMISSION.update()
                .where(SUBMISSION.c.id == submission_id)
                .values(
                    prediction_id=sa.func.coalesce(SUBMISSION.c.prediction_id, prediction_id),
                    status=sa.func.coalesce(SUBMISSION.c.status, status),
                    error=error,
                    sent_at=sent_at,
                    updated_at=self._clock(),
                )
            )


def _wait_some(
    futures: set[Future[SubmitResult]],
) -> tuple[set[Future[SubmitResult]], set[Future[SubmitResult]]]:
    done, pending = wait(futures, return_when=FIRST_COMPLETED)
    return done, pending

"""Read-through: a lookup of a prediction not stored yet asks the VLM Run API, and stores the
answer (source `poll`) through the same forward-only batched write as a callback.

So the SDK's `wait()` called right after `generate()` finds the prediction before its first
callback lands, and a later callback still wins (status only moves forward).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from receiver.errors import ReadThroughFailed, ReadThroughUnavailable
from receiver.ingest.fetch_back import prediction_url
from receiver.writer.deadlines import CommitTimedOut
from receiver.writer.group_commit import GroupCommitter, WriterStopped
from vlmhooks.errors import ContractViolation, MalformedJSON
from vlmhooks.ingest.prediction import parse_prediction_body
from vlmhooks.store.audit import delivery_record
from vlmhooks.store.batch import apply_prediction_writes, prediction_batch
from vlmhooks.store.records import PredictionWrite

if TYPE_CHECKING:
    import httpx

__all__ = ["READ_THROUGH_SOURCE", "ReadThrough"]

READ_THROUGH_SOURCE = "poll"  # what `vlm-submit reconcile` stores: an answer asked for
# An id the API does not know stays unknown for a few seconds: a client polling an id that
# does not exist costs the API one request per this long, not one per poll.
NEGATIVE_TTL_SECONDS = 5.0
NEGATIVE_CACHE_SIZE = 4096
# Per process: a lookup key must not turn the receiver into an amplifier against the API.
RATE_PER_SECOND = 10.0
BURST = 20.0


class ReadThrough:
    """Asks the API for a prediction the database does not hold, and stores its answer."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        writer: GroupCommitter,
        *,
        delivery_body_cap: int,
        clock: Callable[[], float] = time.monotonic,
        negative_ttl: float = NEGATIVE_TTL_SECONDS,
        rate_per_second: float = RATE_PER_SECOND,
        burst: float = BURST,
    ) -> None:
        self._http = http
        self._base_url = base_url
        self._writer = writer
        self._body_cap = delivery_body_cap
        self._clock = clock
        self._negative_ttl = negative_ttl
        self._unknown: OrderedDict[str, float] = OrderedDict()  # id -> when to ask again
        self._rate = rate_per_second
        self._burst = burst
        self._tokens = burst
        self._refilled = clock()

    async def fetch_and_store(self, prediction_id: str) -> bool:
        """True once the API's answer is stored; False when the API does not know the id.

        `ReadThroughUnavailable` (timeout, rate limit) or `ReadThroughFailed` otherwise.
        """
        now = self._clock()
        if self._unknown.get(prediction_id, 0.0) > now:
            return False
        self._take_token(now)
        body = await self._get(prediction_id)
        if body is None:
            self._remember_unknown(prediction_id, now)
            return False
        try:
            prediction = parse_prediction_body(body)
        except (MalformedJSON, ContractViolation) as exc:
            raise ReadThroughFailed(
                f"reading prediction {prediction_id} from the API: invalid answer: {exc.detail}"
            ) from exc
        if prediction.id != prediction_id:
            raise ReadThroughFailed(
                f"asked the API for prediction {prediction_id}, it answered with {prediction.id}"
            )
        write = PredictionWrite(
            prediction=prediction,
            submission_id=None,  # linked by prediction id when a submission recorded it
            source=READ_THROUGH_SOURCE,
            received_at=datetime.now(UTC),
            delivery=delivery_record(body, (), body_cap=self._body_cap),
        )
        try:
            await self._writer.run_batched(apply_prediction_writes, write, phases=prediction_batch)
        except (SQLAlchemyError, WriterStopped, CommitTimedOut) as exc:
            raise ReadThroughUnavailable(
                f"prediction {prediction_id} was read from the API but could not be stored"
            ) from exc
        return True

    def _take_token(self, now: float) -> None:
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens < 1:
            raise ReadThroughUnavailable(
                "too many read-throughs to the VLM Run API from this receiver; retry shortly"
            )
        self._tokens -= 1

    def _remember_unknown(self, prediction_id: str, now: float) -> None:
        self._unknown[prediction_id] = now + self._negative_ttl
        self._unknown.move_to_end(prediction_id)
        while len(self._unknown) > NEGATIVE_CACHE_SIZE:
            self._unknown.popitem(last=False)

    async def _get(self, prediction_id: str) -> bytes | None:
        import httpx  # see receiver/app.py: only the API clients load httpx

        url = prediction_url(self._base_url, prediction_id)
        try:
            response = await self._http.get(url)
        except httpx.TimeoutException as exc:
            raise ReadThroughUnavailable(
                f"reading prediction {prediction_id}: the VLM Run API did not answer in time"
            ) from exc
        except httpx.HTTPError as exc:
            raise ReadThroughFailed(
                f"reading prediction {prediction_id} from the VLM Run API: {type(exc).__name__}"
            ) from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ReadThroughFailed(
                f"reading prediction {prediction_id}: the VLM Run API answered "
                f"{response.status_code}"
            )
        return response.content

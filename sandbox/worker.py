"""Making predictions: image values to bytes, the predictor off the event loop, and the batch
lifecycle (enqueued -> running -> completed/failed) with its callbacks handed to delivery.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

import httpx

from sandbox.delivery import CallbackMessage, DeliveryPolicy, callback_body, deliver
from sandbox.errors import LoopbackImageURL, PredictionFailed
from sandbox.faults import FaultPlan
from sandbox.predictor import Predictor
from sandbox.predictor.decode import decode_image_value
from sandbox.store import PredictionRecord, SandboxStore
from schemas.contract import utc_now
from schemas.enums import Status

__all__ = ["FAIL_FAULT_MESSAGE", "PredictionWorker", "resolve_images"]

logger = logging.getLogger("vlmhooks.sandbox.worker")

FAIL_FAULT_MESSAGE = "sandbox fault injection: this prediction was made to fail ('fail')"
IMAGE_FETCH_TIMEOUT_SECONDS = 10.0
MAX_FETCHED_IMAGE_BYTES = 20 * 1024 * 1024


async def resolve_images(values: Sequence[str], client: httpx.AsyncClient) -> list[bytes]:
    """The bytes of every image; loopback URLs are fetched, anything else raises
    `PredictionFailed` naming the image.
    """
    images: list[bytes] = []
    for index, value in enumerate(values):
        try:
            images.append(decode_image_value(value, index=index))
        except LoopbackImageURL as exc:
            # The predictor does no I/O; the server may reach this machine, so it fetches.
            images.append(await _fetch_loopback(client, exc.url, index))
    return images


async def _fetch_loopback(client: httpx.AsyncClient, url: str, index: int) -> bytes:
    try:
        async with client.stream("GET", url, timeout=IMAGE_FETCH_TIMEOUT_SECONDS) as response:
            if not response.is_success:
                raise PredictionFailed(
                    f"image #{index}: {url} answered HTTP {response.status_code}",
                    image_index=index,
                )
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_FETCHED_IMAGE_BYTES:
                    raise PredictionFailed(
                        f"image #{index}: {url} is larger than {MAX_FETCHED_IMAGE_BYTES} bytes",
                        image_index=index,
                    )
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise PredictionFailed(
            f"image #{index}: cannot fetch {url} ({type(exc).__name__})", image_index=index
        ) from exc


class PredictionWorker:
    """Runs batch predictions on `concurrency` tasks and delivers their callbacks.

    `start` and `stop` belong to the app's lifespan; `stop` cancels whatever is in flight.
    """

    def __init__(
        self,
        *,
        store: SandboxStore,
        predictor: Predictor,
        client: httpx.AsyncClient,
        policy: DeliveryPolicy,
        concurrency: int,
        delivery_concurrency: int,
        processing_delay: float = 0.0,
        deliver_intermediate: bool = False,
    ) -> None:
        self._store = store
        self._predictor = predictor
        self._client = client
        self._policy = policy
        self._concurrency = concurrency
        self._processing_delay = processing_delay
        self._deliver_intermediate = deliver_intermediate
        self._delivery_slots = asyncio.Semaphore(delivery_concurrency)
        self._queue: asyncio.Queue[PredictionRecord] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for _ in range(self._concurrency):
            self._spawn(self._consume())

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def enqueue(self, record: PredictionRecord) -> None:
        self._queue.put_nowait(record)

    async def compute(self, record: PredictionRecord) -> tuple[Status, Any]:
        """The terminal status and response.

        `PredictionFailed` (a bad image or config: the request's fault) propagates, for the
        caller to answer 422 or fail the prediction; a crashing predictor fails the prediction.
        """
        if self._processing_delay:
            await asyncio.sleep(self._processing_delay)
        if record.faults.fail:
            return Status.FAILED, {"error": FAIL_FAULT_MESSAGE}
        images = await resolve_images(record.images, self._client)
        try:
            response = await asyncio.to_thread(
                self._predictor.predict, images, record.domain.value, record.config
            )
        except PredictionFailed:
            raise
        except Exception as exc:
            logger.exception("prediction %s: the predictor crashed", record.id)
            return Status.FAILED, {"error": f"sandbox predictor error: {exc!r}"}
        return Status.COMPLETED, response

    @staticmethod
    def finish(record: PredictionRecord, status: Status, response: Any) -> None:
        record.status = status
        record.response = response
        record.completed_at = utc_now()
        record.images = ()

    async def _consume(self) -> None:
        while True:
            record = await self._queue.get()
            try:
                await self._process(record)
            except Exception:
                # A bug must not kill the worker task; the prediction already ended `failed`.
                logger.exception("prediction %s: unexpected error", record.id)
            finally:
                self._queue.task_done()

    async def _process(self, record: PredictionRecord) -> None:
        record.status = Status.RUNNING
        running = self._message(record)
        plan = record.faults
        running_delivery: asyncio.Task[None] | None = None
        if running is not None and self._deliver_intermediate and not plan.out_of_order:
            running_delivery = self._spawn(self._deliver_in_order([running], plan, after=None))
        try:
            status, response = await self.compute(record)
        except PredictionFailed as exc:
            status, response = Status.FAILED, {"error": exc.message}
        self.finish(record, status, response)
        terminal = self._message(record)
        if terminal is None or running is None:
            return
        # out_of_order: the stale `running` is sent after the terminal status.
        messages = [terminal, running] if plan.out_of_order else [terminal]
        self._spawn(self._deliver_in_order(messages, plan, after=running_delivery))

    def _message(self, record: PredictionRecord) -> CallbackMessage | None:
        if record.callback_url is None:
            return None
        return CallbackMessage(
            prediction_id=record.id,
            status=record.status,
            url=record.callback_url,
            body=callback_body(record.to_wire()),
        )

    async def _deliver_in_order(
        self,
        messages: Sequence[CallbackMessage],
        plan: FaultPlan,
        *,
        after: asyncio.Task[None] | None,
    ) -> None:
        # One prediction's callbacks go out one after the other, so their order is the
        # order chosen here (and out_of_order is really out of order at the receiver).
        if after is not None:
            await asyncio.wait([after])
        if plan.drop:
            return
        for message in messages:
            if plan.delay:
                await asyncio.sleep(plan.delay)
            for copy in range(1, plan.duplicate + 1):
                await deliver(
                    self._client,
                    message,
                    self._policy,
                    record=self._store.record_attempt,
                    limiter=self._delivery_slots,
                    copy=copy,
                )

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

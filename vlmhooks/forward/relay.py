"""The relay: for each destination, claim due outbox rows, publish them, write back the
verdicts. At least once (a row is deleted only after its acknowledgement), in order per
prediction (see `outbox.claim`), with backoff, a maximum age, then a dead letter."""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import Connection, Engine

from vlmhooks import tracing
from vlmhooks.forward.backoff import Backoff
from vlmhooks.forward.destinations import Destination
from vlmhooks.forward.metrics import ForwardMetrics
from vlmhooks.forward.publish import Attempt, Publisher, encode_message
from vlmhooks.forward.registry import DestinationState, destination_state
from vlmhooks.reads.bounded import call_within
from vlmhooks.settings import DEFAULT_DB_TIMEOUT_SECONDS
from vlmhooks.store.outbox import Claimed, Lease, Settlement, claim, has_due, settle, with_payloads
from vlmhooks.tasks import cancel_and_wait

__all__ = ["ChangeSignal", "Relay", "RelayConfig", "Round", "WriteRunner", "transaction_runner"]

T = TypeVar("T")
# Runs a write in a transaction: the group committer in `serve` on SQLite (one writer),
# else a transaction of the relay's own.
WriteRunner = Callable[[Callable[[Connection], Any]], Awaitable[Any]]

DEFAULT_MAX_AGE_SECONDS = 24 * 3600
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_BATCH = 128
STOP_GRACE_SECONDS = 5.0
DEFAULT_GATHER_SECONDS = 0.005
log = logging.getLogger("vlmhooks.forward")


class ChangeSignal(Protocol):
    """Wake-ups on commits (`receiver.live.events.EventHub` fits)."""

    def ticket(self) -> asyncio.Event | None: ...

    async def wait(self, ticket: asyncio.Event | None, at_most: float) -> None: ...


@dataclass(frozen=True)
class RelayConfig:
    max_age: float = DEFAULT_MAX_AGE_SECONDS
    # Longer than an attempt's timeout: a lease that ran out while its holder still waits
    # on the destination would let a second relay send the same row.
    lease: float = DEFAULT_LEASE_SECONDS
    poll_interval: float = DEFAULT_POLL_INTERVAL
    batch: int = DEFAULT_BATCH
    gather: float = DEFAULT_GATHER_SECONDS
    backoff: Backoff = field(default_factory=Backoff)
    # Each database call's bound (VLMHOOKS_DB_TIMEOUT): past it the round fails and the
    # relay backs off, rather than wait on a database that does not answer.
    db_timeout: float = DEFAULT_DB_TIMEOUT_SECONDS


@dataclass
class Round:
    """What one claim-publish-settle round did."""

    attempted: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    gone: bool = False
    retry_after: float | None = None
    error: str | None = None


def transaction_runner(engine: Engine, timeout: float = DEFAULT_DB_TIMEOUT_SECONDS) -> WriteRunner:
    """Each write in a transaction of its own, off the event loop, within `timeout` seconds
    (its outcome then unknown: a claim's lease runs out, a settlement is sent again)."""

    async def run_write(op: Callable[[Connection], T]) -> T:
        def run() -> T:
            with engine.begin() as connection:
                return op(connection)

        return await call_within(timeout, run)

    return run_write


def relay_owner() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Relay:
    def __init__(
        self,
        engine: Engine,
        destinations: Sequence[Destination],
        publishers: Mapping[str, Publisher],
        *,
        run_write: WriteRunner | None = None,
        config: RelayConfig | None = None,
        changes: ChangeSignal | None = None,
        metrics: ForwardMetrics | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._engine = engine  # reads (the idle look); writes go through `run_write`
        self.destinations = tuple(destinations)
        self._publishers = publishers
        self.config = config or RelayConfig()
        self._run_write = run_write or transaction_runner(engine, self.config.db_timeout)
        self._changes = changes
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self.owner = relay_owner()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        # Destinations whose loop is only waiting: `stop` cancels those at once; the others
        # are inside a round or a database read, which a cancel would not stop (a thread
        # goes on) and would leave holding a connection.
        self._resting: set[str] = set()
        self._busy: dict[str, bool] = {}  # the last round found work: skip the idle look
        self._disabled: dict[str, tuple[float, bool]] = {}  # destination: (read at, disabled)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def start(self) -> None:
        for destination in self.destinations:
            task = asyncio.create_task(self._loop(destination), name=f"forward-{destination.id}")
            self._tasks[destination.id] = task

    async def stop(self) -> None:
        """Stop claiming. A round in flight may finish (its acknowledgements written, so a
        restart does not wait out its leases) for up to `STOP_GRACE_SECONDS`; past that it
        is cancelled, its leases run out, and its rows go again later (at least once)."""
        self._stopping = True
        for destination_id, task in self._tasks.items():
            if destination_id in self._resting:
                task.cancel()
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
        for task in tasks:
            await cancel_and_wait(task)
        self._tasks.clear()
        for publisher in self._publishers.values():
            try:
                await publisher.aclose()
            except Exception:
                log.warning("closing a forwarding client failed", exc_info=True)

    async def run_round(
        self, destination: Destination, *, limit: int | None = None, look: bool = True
    ) -> Round:
        """Claim, publish and settle once; what `start` runs in a loop, and tests call.

        `look` first checks on the read engine that anything is due, so an idle relay never
        opens a write transaction; after a round that found work, the claim goes straight.
        """
        now = self._now()
        timeout = self.config.db_timeout
        if look and not await call_within(timeout, self._has_due, destination.id, now):
            return Round()
        lease = timedelta(seconds=self.config.lease)
        batch = limit or self.config.batch
        leases: list[Lease] = await self._run_write(
            lambda c: claim(c, destination.id, now=now, lease=lease, owner=self.owner, limit=batch)
        )
        if not leases:
            return Round()
        claimed = await call_within(timeout, self._with_payloads, leases)
        publisher = self._publishers[destination.id]
        if tracing.enabled:
            sends = [
                _traced_attempt(destination, row, publisher.publish(encode_message(row)))
                for row in claimed
            ]
        else:
            sends = [publisher.publish(encode_message(row)) for row in claimed]
        attempts = await asyncio.gather(*sends)
        result, settlement = self._judge(destination, claimed, attempts)
        await self._run_write(lambda c: settle(c, settlement))
        return result

    def _with_payloads(self, leases: list[Lease]) -> list[Claimed]:
        with self._engine.connect() as connection:
            return with_payloads(connection, leases)

    def _has_due(self, destination_id: str, now: datetime) -> bool:
        with self._engine.connect() as connection:
            return has_due(connection, destination_id, now)

    def _judge(
        self, destination: Destination, claimed: list[Claimed], attempts: Sequence[Attempt]
    ) -> tuple[Round, Settlement]:
        now = self._now()
        result = Round(attempted=len(claimed))
        settlement = Settlement(destination.id, now)
        for row, attempt in zip(claimed, attempts, strict=True):
            if attempt.outcome == "delivered":
                result.delivered += 1
                settlement.delivered.append(row.id)
                self._observe(destination, "delivered", (now - row.created_at).total_seconds())
                continue
            result.error = settlement.last_error = attempt.error or attempt.outcome
            if attempt.outcome == "gone":
                result.gone = True
                settlement.released.append(row.id)
                settlement.disabled_reason = attempt.error
                self._observe(destination, "gone")
            elif (now - row.created_at).total_seconds() >= self.config.max_age:
                result.dead += 1
                settlement.dead.append((row.id, result.error))
                self._observe(destination, "dead")
                log.warning(
                    "forwarding to %s: %s (%s of %s) is a dead letter after %d attempts: %s",
                    destination.target,
                    row.message_id,
                    row.type,
                    row.prediction_id,
                    row.attempts,
                    result.error,
                )
            else:
                result.retried += 1
                if attempt.retry_after is not None:
                    result.retry_after = max(result.retry_after or 0.0, attempt.retry_after)
                delay = self.config.backoff.delay(row.attempts, self._jitter, attempt.retry_after)
                settlement.retries.append((row.id, now + timedelta(seconds=delay), result.error))
                self._observe(destination, "retry")
        return result, settlement

    def _observe(
        self, destination: Destination, outcome: str, latency: float | None = None
    ) -> None:
        if self._metrics is None:
            return
        self._metrics.attempts.labels(destination.id, outcome).inc()
        if latency is not None:
            self._metrics.latency.labels(destination.id).observe(max(0.0, latency))

    async def _loop(self, destination: Destination) -> None:
        """Rounds forever. After a round with no success the destination rests (backoff,
        or its Retry-After) and is then probed with one row until it answers again."""
        failures = 0
        self._busy[destination.id] = False
        while not self._stopping:
            try:
                failures = await self._step(destination, failures)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The database went away, say: keep the relay alive and try again later.
                failures += 1
                delay = self.config.backoff.delay(failures, self._jitter)
                log.warning(
                    "forwarding to %s: %s; retrying in %.1fs",
                    destination.target,
                    destination.scrub(f"{type(exc).__name__}: {exc}"),
                    delay,
                )
                await self._rest(destination, self._sleep(delay))

    async def _step(self, destination: Destination, failures: int) -> int:
        # Re-read at most once per poll interval: a 410 elsewhere, or a re-enable through
        # the API in another process, is seen that late at worst.
        checked_at, disabled = self._disabled.get(destination.id, (-math.inf, False))
        if self._clock() - checked_at >= self.config.poll_interval:
            state = await call_within(self.config.db_timeout, self._state, destination.id)
            disabled = state is not None and state.disabled_reason is not None
            self._disabled[destination.id] = (self._clock(), disabled)
        if disabled:
            # Until someone re-enables it.
            await self._rest(destination, self._sleep(self.config.poll_interval))
            return failures
        ticket = self._changes.ticket() if self._changes is not None else None
        result = await self.run_round(
            destination, limit=1 if failures else None, look=not self._busy[destination.id]
        )
        self._busy[destination.id] = result.attempted > 0
        if self._stopping:
            return failures
        if result.gone:
            self._disabled[destination.id] = (self._clock(), True)
            log.warning(
                "forwarding to %s is disabled: %s; `POST /v1/forwarding/%s/retry` enables it",
                destination.target,
                result.error,
                destination.id,
            )
            return failures
        if result.attempted == 0:
            if self._changes is not None:
                await self._rest(destination, self._changes.wait(ticket, self.config.poll_interval))
                # Commits come in bursts (and our own claims and acknowledgements commit
                # too): a few ms of gathering turns many looks at one change into one
                # round over several, for a few ms of latency.
                await self._rest(destination, self._sleep(self.config.gather))
            else:
                await self._rest(destination, self._sleep(self.config.poll_interval))
            return failures
        if result.delivered:
            if failures:
                log.info("forwarding to %s recovered", destination.target)
            return 0
        failures += 1
        if failures == 1:
            log.warning("forwarding to %s failing: %s", destination.target, result.error)
        delay = self.config.backoff.delay(failures, self._jitter, result.retry_after)
        await self._rest(destination, self._sleep(delay))
        return failures

    async def _rest(self, destination: Destination, waiting: Awaitable[None]) -> None:
        if self._stopping:
            if inspect.iscoroutine(waiting):
                waiting.close()
            return
        self._resting.add(destination.id)
        try:
            await waiting
        finally:
            self._resting.discard(destination.id)

    def _state(self, destination_id: str) -> DestinationState | None:
        with self._engine.connect() as connection:
            return destination_state(connection, destination_id)


async def _traced_attempt(
    destination: Destination, row: Claimed, sending: Awaitable[Attempt]
) -> Attempt:
    """One forwarding attempt inside its span, when tracing is on."""
    attributes: dict[str, str | int] = {
        "vlmhooks.forward.destination": destination.id,
        "vlmhooks.forward.kind": destination.kind,
        "vlmhooks.forward.attempt": row.attempts,
        "messaging.message.id": row.message_id,
        "prediction.id": row.prediction_id,
        "vlmhooks.event.type": row.type,
    }
    name = f"forward {destination.id}"
    with tracing.start_span(name, kind="producer", attributes=attributes) as span:
        attempt = await sending
        span.set_attribute("vlmhooks.forward.outcome", attempt.outcome)
        if attempt.outcome != "delivered":
            from opentelemetry.trace import StatusCode

            span.set_status(StatusCode.ERROR, attempt.error or attempt.outcome)
    return attempt

"""Forwarding as a process runs it: checked from the settings at start, then the registry
synced and (where wanted) a relay started; `serve` and `forward` both use this."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Connection, Engine

from schemas.contract import utc_now
from vlmhooks.errors import ConfigError
from vlmhooks.forward.backoff import Backoff
from vlmhooks.forward.destinations import Destination, parse_destinations, require_client
from vlmhooks.forward.http import HttpPublisher, StandardWebhookSigner
from vlmhooks.forward.metrics import ForwardMetrics
from vlmhooks.forward.publish import Publisher
from vlmhooks.forward.registry import sync_destinations
from vlmhooks.forward.relay import ChangeSignal, Relay, RelayConfig, WriteRunner
from vlmhooks.settings import Settings
from vlmhooks.tasks import cancel_and_wait

__all__ = ["Forwarding"]

log = logging.getLogger("vlmhooks.forward")


class Forwarding:
    """Everything forwarding needs from the settings, parsed once (one line if unusable)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.configured = settings.forward_to is not None
        self.destinations: tuple[Destination, ...] = parse_destinations(settings.forward_to or "")
        for destination in self.destinations:
            require_client(destination)
        self.signer: StandardWebhookSigner | None = None
        if any(destination.kind == "http" for destination in self.destinations):
            secrets = [secret.get_secret_value() for secret in settings.forward_secret]
            self.signer = StandardWebhookSigner(secrets)
        if settings.forward_lease <= settings.forward_timeout:
            raise ConfigError(
                "VLMHOOKS_FORWARD_LEASE must be longer than VLMHOOKS_FORWARD_TIMEOUT, or a "
                "slow attempt's row could be claimed and sent again by another relay"
            )
        self.timeout = settings.forward_timeout
        self.relay_config = RelayConfig(
            max_age=float(settings.forward_max_age),
            lease=settings.forward_lease,
            poll_interval=settings.forward_poll_interval,
            backoff=Backoff(settings.forward_backoff, settings.forward_backoff_max),
            db_timeout=settings.db_timeout,
        )
        self.clock = clock
        self.relay: Relay | None = None
        self._task: asyncio.Task[None] | None = None

    def _sync(self, connection: Connection) -> None:
        """Make this configuration the database's, when this process was given one."""
        if self.configured:
            sync_destinations(connection, self.destinations, utc_now())

    def publisher(self, destination: Destination) -> Publisher:
        if destination.kind == "http":
            assert self.signer is not None
            return HttpPublisher(destination, self.signer, timeout=self.timeout, clock=self.clock)
        if destination.kind == "redis":
            from vlmhooks.forward.redis import RedisPublisher

            return RedisPublisher(destination, timeout=self.timeout)
        if destination.kind == "python":
            from vlmhooks.forward.python_handler import PythonPublisher

            return PythonPublisher(destination, timeout=self.timeout)
        if destination.kind == "nats":
            from vlmhooks.forward.nats import NatsPublisher

            return NatsPublisher(destination, timeout=self.timeout)
        from vlmhooks.forward.amqp import AmqpPublisher

        return AmqpPublisher(destination, timeout=self.timeout)

    async def start(
        self,
        engine: Engine,
        *,
        run_relay: bool,
        run_write: WriteRunner,
        changes: ChangeSignal | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """Sync the registry, then (with `run_relay`) relay: reads on `engine`, writes through
        `run_write`. In the background: a process must start even while the database is
        down (`/readyz` reports that), so neither step may hold start-up."""
        if not self.configured:
            return
        metrics = None if registry is None else ForwardMetrics(registry)
        self._task = asyncio.create_task(
            self._run(engine, run_relay, run_write, changes, metrics), name="forward-start"
        )

    async def _run(
        self,
        engine: Engine,
        run_relay: bool,
        run_write: WriteRunner,
        changes: ChangeSignal | None,
        metrics: ForwardMetrics | None,
    ) -> None:
        failures = 0
        while True:
            try:
                await run_write(self._sync)
                break
            except Exception as exc:
                failures += 1
                delay = self.relay_config.backoff.delay(failures, random.random)
                log.warning(
                    "forwarding: cannot register the destinations (%s); retrying in %.1fs",
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
        if not run_relay or not self.destinations:
            return
        self.relay = Relay(
            engine,
            self.destinations,
            {d.id: self.publisher(d) for d in self.destinations},
            run_write=run_write,
            config=self.relay_config,
            changes=changes,
            metrics=metrics,
            clock=self.clock,
        )
        self.relay.start()
        log.info(
            "forwarding to %s", ", ".join(destination.target for destination in self.destinations)
        )

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if self.relay is not None:
            await self.relay.stop()
            self.relay = None

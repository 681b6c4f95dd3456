"""`vlm-receiver forward`: the relay as a process of its own, until SIGTERM or SIGINT.

With no destination configured it idles instead of exiting: under honcho (or any process
manager that stops everything when one process ends) a `forward:` line must stay up.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from prometheus_client import CollectorRegistry, start_http_server

from receiver.live.events import EventHub
from vlmhooks.errors import ConfigError
from vlmhooks.forward.relay import transaction_runner
from vlmhooks.forward.runtime import Forwarding
from vlmhooks.settings import Settings
from vlmhooks.store.db import make_engine

__all__ = ["run_forward"]


async def run_forward(
    settings: Settings, *, metrics_port: int | None = None, stop: asyncio.Event | None = None
) -> None:
    forwarding = Forwarding(settings)  # a bad configuration is one line, before any I/O
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    registry = CollectorRegistry(auto_describe=True)
    if metrics_port is not None:
        try:
            start_http_server(metrics_port, registry=registry)
        except OSError as exc:  # in use, not allowed: the CLI's one line, not a traceback
            raise ConfigError(
                f"--metrics-port: cannot listen on port {metrics_port}: {exc.strerror or exc}"
            ) from None
    engine = make_engine(settings.database_url, pool_size=4, timeout=settings.db_timeout)
    # BEGIN IMMEDIATE: on SQLite the relay's writes queue behind the receiver's instead
    # of failing to upgrade a read lock.
    write_engine = make_engine(
        settings.database_url, pool_size=2, immediate_writes=True, timeout=settings.db_timeout
    )
    events = EventHub(engine)
    await events.start()
    try:
        await forwarding.start(
            engine,
            run_relay=True,
            run_write=transaction_runner(write_engine, settings.db_timeout),
            changes=events,
            registry=registry,
        )
        if not forwarding.destinations:
            print("vlm-receiver forward: no destinations configured; idle", file=sys.stderr)
        await stop.wait()
    finally:
        await forwarding.stop()
        await events.stop()
        write_engine.dispose()
        engine.dispose()

"""`create_app(settings)`: the receiver, built from arguments; resources live in the lifespan."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette

from receiver.callbacks import callback_routes
from receiver.events import EventHub
from receiver.forwarding import forwarding_routes
from receiver.group_commit import GroupCommitter
from receiver.lookup import lookup_routes
from receiver.metrics import ReceiverMetrics
from receiver.ops import ops_routes
from receiver.problems import EXCEPTION_HANDLERS
from receiver.state import ReceiverState
from vlmhooks.db import is_sqlite, make_engine
from vlmhooks.forward.relay import transaction_runner
from vlmhooks.forward.runtime import Forwarding
from vlmhooks.settings import Settings, load_settings
from vlmhooks.signatures import parse_standard_webhook_secret
from vlmhooks.tokens import CallbackTokens

FETCH_BACK_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time) -> Starlette:
    """Check the configuration now (one clear error), open connections in the lifespan."""
    secret_keys = settings.require_secret_keys()
    api_keys = tuple(settings.require_lookup_auth())
    for secret in settings.standard_webhook_secrets:
        parse_standard_webhook_secret(secret.get_secret_value())
    tokens = CallbackTokens(secret_keys, max_age_seconds=settings.token_max_age, clock=clock)
    forwarding = Forwarding(settings, clock=clock)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Any]]:
        metrics = ReceiverMetrics()
        engine = make_engine(settings.database_url)
        # One connection is all the writer needs; BEGIN IMMEDIATE makes writers in other
        # processes queue on SQLite's busy timeout rather than fail.
        write_engine = make_engine(settings.database_url, pool_size=1, immediate_writes=True)
        events = EventHub(engine)
        writer = GroupCommitter(
            write_engine,
            on_batch=metrics.commit_batch_size.observe,
            after_commit=events.notify_committed,
        )
        headers = {}
        if settings.vlmrun_api_key is not None:
            headers["Authorization"] = f"Bearer {settings.vlmrun_api_key.get_secret_value()}"
        http = httpx.AsyncClient(timeout=FETCH_BACK_TIMEOUT, headers=headers)
        await events.start()
        writer.start()
        # SQLite has one writer: the relay's claims and acknowledgements join the group
        # committer's batches rather than queue on the file lock against it.
        relay_writes = writer.run if is_sqlite(engine) else transaction_runner(engine)
        try:
            await forwarding.start(
                engine,
                run_relay=settings.forward_in_serve,
                run_write=relay_writes,
                changes=events,
                registry=metrics.registry,
            )
            yield {
                "receiver": ReceiverState(
                    settings=settings,
                    engine=engine,
                    writer=writer,
                    tokens=tokens,
                    metrics=metrics,
                    events=events,
                    http=http,
                    api_keys=api_keys,
                    clock=clock,
                )
            }
        finally:
            await forwarding.stop()
            writer.stop()
            await events.stop()
            await http.aclose()
            write_engine.dispose()
            engine.dispose()

    app = Starlette(
        routes=[*callback_routes(), *lookup_routes(), *forwarding_routes(), *ops_routes()],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    # A webhook sender does not follow redirects: `/v1/callbacks/<token>/` must get a
    # problem+json 404, not a 307 to a URL it will never retry.
    app.router.redirect_slashes = False
    return app


def create_app_from_environment() -> Starlette:
    """The uvicorn factory used by `vlm-receiver serve` (each worker reads the environment)."""
    return create_app(load_settings())

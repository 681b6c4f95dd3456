"""`create_app(settings)`: the receiver, built from arguments; resources live in the lifespan."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from receiver.api.callback_urls import callback_url_routes
from receiver.api.forwarding import forwarding_routes
from receiver.api.lookup import lookup_routes
from receiver.api.replay_route import replay_routes
from receiver.api.usage import usage_routes
from receiver.dashboard.routes import dashboard_routes
from receiver.dashboard.sessions import SESSIONS_STATE_KEY, DashboardSessions
from receiver.http.problems import EXCEPTION_HANDLERS
from receiver.ingest.callbacks import callback_endpoint, callback_routes
from receiver.ingest.read_through import ReadThrough
from receiver.ingest.refusals import RefusalLog
from receiver.ingest.slots import CallbackSlots
from receiver.ingest.verify import SignaturePolicy
from receiver.live.events import EventHub
from receiver.live.fanout import FanOut
from receiver.metrics import ReceiverMetrics
from receiver.ops.routes import ops_routes
from receiver.server.heap import freeze_startup_heap
from receiver.server.logs import install_redaction
from receiver.server.runtime import open_engines, resolve_runtime, wal_checkpointer
from receiver.state import SHUTDOWN_HOOK, ReceiverState
from receiver.writer.auto import committer_for
from receiver.writer.pruning import DeliveryPruner
from vlmhooks.forward.relay import transaction_runner
from vlmhooks.forward.runtime import Forwarding
from vlmhooks.settings import Settings, load_settings
from vlmhooks.trust.tokens import CALLBACK_PATH_PREFIX, CallbackTokens

if TYPE_CHECKING:
    import httpx

FETCH_BACK_TIMEOUT_SECONDS = 10.0
FETCH_BACK_CONNECT_TIMEOUT_SECONDS = 5.0


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], float] = time.time,
    freeze_heap: bool = False,
) -> ReceiverApp:
    """Check the configuration now (one clear error), open connections in the lifespan.

    `settings`: from the environment when none are given. A host app that mounts the result
    runs `app.lifespan` (README, "Inside your own app").

    `freeze_heap`: once started, exempt every object alive then from garbage collection
    (receiver/server/heap.py); for a server process, which builds one app.
    """
    if settings is None:
        settings = load_settings()
    secret_keys = settings.require_secret_keys()
    api_keys = tuple(settings.require_lookup_auth())
    # Parsed here, once: every callback reuses the verifiers (and their derived keys).
    signature_policy = SignaturePolicy.from_settings(settings)
    tokens = CallbackTokens(
        secret_keys,
        max_age_seconds=settings.token_max_age,
        clock_skew_seconds=settings.clock_skew,
        clock=clock,
    )
    runtime = resolve_runtime(settings)
    forwarding = Forwarding(settings, clock=clock)
    install_redaction()  # before the first request: the access log must never see a secret

    @asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[dict[str, Any]]:
        metrics = ReceiverMetrics()
        engine, write_engine = open_engines(settings, runtime)
        events = EventHub(engine, listen=runtime.listens)
        checkpointer = wal_checkpointer(write_engine, runtime)
        on_batch: Callable[[int], None] = metrics.commit_batch_size.observe
        if checkpointer is not None:
            on_batch = _both(on_batch, checkpointer.note_writes)
        writer = committer_for(
            write_engine,
            serverless=runtime.serverless,
            on_batch=on_batch,
            after_commit=events.notify_committed,
            timeout=settings.db_timeout,
        )
        # Read-through needs a key to ask the API with; VLMHOOKS_READ_THROUGH=false turns it off.
        reads_through = settings.read_through and settings.vlmrun_api_key is not None
        http = _fetch_back_client(settings) if settings.fetch_back or reads_through else None
        fanout: FanOut | None = None
        if not runtime.serverless:
            # Serverless: nothing may outlive an invocation, so no hub; readers poll.
            await events.start()
            fanout = FanOut(
                engine,
                events,
                subscriber_buffer_bytes=settings.sse_buffer_bytes,
                read_timeout=settings.db_timeout,
            )
            await fanout.start()
            watched = fanout  # bound for the gauges' callbacks
            metrics.listeners.labels("sse").set_function(lambda: watched.subscribers)
            metrics.listeners.labels("long_poll").set_function(lambda: watched.long_polls)
        writer.start()
        if checkpointer is not None:
            checkpointer.start()
            checkpointer.export_frames(metrics.wal_frames)
        # Serverless: nothing may outlive an invocation; prune with `deliveries prune` instead.
        pruner = None
        if settings.delivery_retention is not None and not runtime.serverless:
            pruner = DeliveryPruner(writer, settings.delivery_retention, clock=clock)
            pruner.start()
        # SQLite has one writer: the relay's claims and acknowledgements join the group
        # committer's batches rather than queue on the file lock against it.
        relay_writes = (
            writer.run
            if engine.dialect.name == "sqlite"
            else transaction_runner(engine, settings.db_timeout)
        )
        try:
            await forwarding.start(
                engine,
                # Serverless: nothing may outlive an invocation; run `vlm-receiver forward`.
                run_relay=settings.forward_in_serve and not runtime.serverless,
                run_write=relay_writes,
                changes=events,
                registry=metrics.registry,
            )
            if freeze_heap:
                freeze_startup_heap()  # last: everything start-up made is long-lived
            state = {
                "receiver": ReceiverState(
                    settings=settings,
                    engine=engine,
                    writer=writer,
                    tokens=tokens,
                    metrics=metrics,
                    events=events,
                    http=http,
                    api_keys=api_keys,
                    signature_policy=signature_policy,
                    clock=clock,
                    refusals=RefusalLog(metrics.refusals),
                    serverless=runtime.serverless,
                    fanout=fanout,
                    read_through=None
                    if http is None or not reads_through
                    else ReadThrough(
                        http,
                        settings.vlmrun_base_url,
                        writer,
                        delivery_body_cap=settings.delivery_body_cap,
                    ),
                ),
                SESSIONS_STATE_KEY: DashboardSessions(
                    secret_keys, api_keys, max_age_seconds=settings.session_max_age, clock=clock
                ),
                # receiver/server/protocol.py calls it when the server starts shutting down.
                SHUTDOWN_HOOK: fanout.begin_shutdown if fanout is not None else _no_op,
            }
            app.lifespan_state = state
            try:
                yield state
            finally:
                app.lifespan_state = None
        finally:
            await forwarding.stop()
            if pruner is not None:
                await pruner.stop()
            if fanout is not None:
                await fanout.stop()
            await writer.drain()
            writer.stop()
            if checkpointer is not None:
                checkpointer.stop()
            await events.stop()
            if http is not None:
                await http.aclose()
            write_engine.dispose()
            engine.dispose()

    # Bounds memory: callback bytes read and decoded at once (README, "Limits").
    callbacks = CallbackSlots(
        callback_endpoint,
        budget=settings.callback_bytes_in_flight,
        body_cap=settings.max_body_bytes,
    )
    app = ReceiverApp(
        callbacks,
        routes=[
            *callback_routes(callbacks),
            *callback_url_routes(),
            *lookup_routes(),
            *replay_routes(),
            *forwarding_routes(),
            *usage_routes(),
            *dashboard_routes(),
            *ops_routes(),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    # A webhook sender does not follow redirects: `/v1/callbacks/<token>/` must get a
    # problem+json 404, not a 307 to a URL it will never retry.
    app.router.redirect_slashes = False
    return app


class ReceiverApp(Starlette):
    """Starlette, except that a callback skips the middleware stack and the router, and that
    it finds its own lifespan state when mounted in a host app.

    Callbacks are the one path whose cost decides throughput; the router would try them
    against a regex and the exception middleware would wrap them, for nothing: the endpoint
    answers every error itself (ARCHITECTURE.md, "The callback fast path"). Anything that is
    not exactly `POST /v1/callbacks/<one segment>` goes through Starlette as usual, where the
    same endpoint is routed.
    """

    def __init__(
        self,
        callbacks: ASGIApp,
        *,
        lifespan: Callable[[object], AbstractAsyncContextManager[dict[str, Any]]],
        **kwargs: Any,
    ) -> None:
        super().__init__(lifespan=lifespan, **kwargs)
        self._callbacks = callbacks
        # For a host app: `FastAPI(lifespan=hooks.lifespan)` or `async with hooks.lifespan(app)`.
        self.lifespan = lifespan
        # Set while the lifespan runs, whoever runs it (a server, or a host app).
        self.lifespan_state: dict[str, Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        own = self.lifespan_state
        if own is not None and scope["type"] in ("http", "websocket"):
            # Mounted, a request carries the host's lifespan state, which holds ours only when
            # the host's lifespan is ours. One identity check when it does (a server of our own).
            state = scope.get("state")
            if state is None or state.get("receiver") is not own["receiver"]:
                scope["state"] = {**(state or {}), **own}
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path: str = scope["path"]
            token = path[_PREFIX_LENGTH:]
            if path.startswith(CALLBACK_PATH_PREFIX) and token and "/" not in token:
                scope["app"] = self
                scope["path_params"] = {"token": token}
                await self._callbacks(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


_PREFIX_LENGTH = len(CALLBACK_PATH_PREFIX)


def _fetch_back_client(settings: Settings) -> httpx.AsyncClient:
    # Imported here: only fetch-back needs httpx, whose import also loads its CLI's
    # dependencies (click, rich, pygments) and would cost every cold start.
    import httpx

    headers = {}
    if settings.vlmrun_api_key is not None:
        headers["Authorization"] = f"Bearer {settings.vlmrun_api_key.get_secret_value()}"
    timeout = httpx.Timeout(FETCH_BACK_TIMEOUT_SECONDS, connect=FETCH_BACK_CONNECT_TIMEOUT_SECONDS)
    return httpx.AsyncClient(timeout=timeout, headers=headers)


def _both(first: Callable[[int], None], second: Callable[[int], None]) -> Callable[[int], None]:
    def call(size: int) -> None:
        first(size)
        second(size)

    return call


def _no_op() -> None:
    return None


def create_app_from_environment() -> Starlette:
    """The uvicorn factory used by `vlm-receiver serve` (each worker reads the environment)."""
    return create_app(load_settings(), freeze_heap=True)

"""AWS Lambda entry point: `receiver.server.serverless.handler`, the receiver behind Mangum.

API Gateway HTTP API (payload v2) and REST API (v1), Application Load Balancer and Lambda
Function URL events all become one ASGI request to the same app `vlm-receiver serve` runs.
Importing this module loads Mangum and nothing of the app: the app, its settings and its
database layer are built on the first invocation and kept for the instance's life.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from mangum import Mangum
from mangum.adapter import DEFAULT_TEXT_MIME_TYPES

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.applications import Starlette
    from starlette.types import Receive, Scope, Send

    from vlmhooks.settings import Settings

__all__ = ["ContainerLifespan", "ServerlessHandler", "handler"]

# Problem bodies are text: returned base64-encoded, a REST API without binary media types
# would hand the sender base64 instead of JSON.
TEXT_MIME_TYPES = [*DEFAULT_TEXT_MIME_TYPES, "application/problem+json"]

log = logging.getLogger("vlmhooks.serverless")


class ContainerLifespan:
    """ASGI: runs the app's lifespan once, on the first request, and keeps its state.

    Mangum's own lifespan support runs startup and shutdown around every invocation, which
    would open and dispose the engine (a new database connection, TLS and authentication
    included) for every callback. A function instance serves one invocation at a time and
    is frozen in between, so its state (the engine's pool, the callback-token keys) is
    built once and reused; nothing in it runs between invocations (runtime.py).
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self._state: dict[str, Any] | None = None
        self._exit = AsyncExitStack()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._state is None:
            # A failed startup is not kept: Mangum answers 500, the next invocation retries.
            state = await self._exit.enter_async_context(self.app.router.lifespan_context(self.app))
            self._state = dict(state or {})
        # A shallow copy per request, as uvicorn does: `request.state` writes stay local.
        await self.app({**scope, "state": dict(self._state)}, receive, send)

    async def aclose(self) -> None:
        """Run the lifespan's shutdown (tests; Lambda ends an instance without warning)."""
        self._state = None
        await self._exit.aclose()


class ServerlessHandler:
    """The Lambda handler: `handler(event, context)` returns the platform's response dict.

    The first call reads the settings (one clear error when they are wrong), builds the app
    and an event loop; later calls reuse both. Mangum runs every invocation on
    `asyncio.get_event_loop()`, so the loop is set as current before each one.
    """

    def __init__(
        self, settings: Settings | None = None, *, clock: Callable[[], float] | None = None
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._app: ContainerLifespan | None = None
        self._adapter: Mangum | None = None

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if self._adapter is None or self._loop is None:
            self._build()
        assert self._adapter is not None and self._loop is not None
        asyncio.set_event_loop(self._loop)
        return self._adapter(event, context)

    def _build(self) -> None:
        from receiver.app import create_app
        from vlmhooks.errors import VlmhooksError
        from vlmhooks.settings import load_settings

        try:
            settings = self._settings or load_settings()
            if self._clock is None:
                app = create_app(settings)
            else:
                app = create_app(settings, clock=self._clock)
        except VlmhooksError as exc:
            # One line in the function's log, not a traceback into our modules.
            log.error("vlm-receiver: error: %s", exc.detail)
            raise exc.with_traceback(None) from None
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._app = ContainerLifespan(app)
        self._adapter = Mangum(self._app, lifespan="off", text_mime_types=TEXT_MIME_TYPES)
        self._loop = loop

    def close(self) -> None:
        """Shut the app down and close the loop; the handler builds afresh if called again."""
        loop, app = self._loop, self._app
        self._loop = self._app = self._adapter = None
        if loop is None:
            return
        try:
            if app is not None:
                loop.run_until_complete(app.aclose())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
            asyncio.set_event_loop(None)


handler = ServerlessHandler()

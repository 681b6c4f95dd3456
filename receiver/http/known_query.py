"""Route middleware: a query parameter the route does not take is a 400, never ignored.

Added by `DocumentedRoute(strict_query=True)` (`receiver/http/routing.py`) from the parameters the
route's operation declares, the same declaration the OpenAPI document lists, so the SSE stream
gets the rule without its handler knowing.
"""

from __future__ import annotations

from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from receiver.http.auth import ACCESS_TOKEN_PARAM
from receiver.http.params import reject_unknown
from receiver.http.problems import receiver_error_response
from vlmhooks.errors import PayloadError

__all__ = ["KnownQuery"]


class KnownQuery:
    """Refuses a request carrying a query parameter outside `names` (plus `access_token`,
    which `RequireBearer` reads on every authenticated GET)."""

    def __init__(self, app: ASGIApp, names: frozenset[str]) -> None:
        self.app = app
        self.names = names | {ACCESS_TOKEN_PARAM}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                reject_unknown(QueryParams(scope["query_string"]), self.names)
            except PayloadError as exc:
                await receiver_error_response(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)

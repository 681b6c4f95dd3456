"""Bearer-key auth for the lookup API, as plain ASGI middleware wrapped around each route.

Keys come from the lifespan state (`ReceiverState.api_keys`, several for rotation); an
empty tuple means anonymous reads were explicitly allowed at start. Browsers cannot set
headers on an EventSource, so GET requests may carry the key as `?access_token=` instead.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from typing import ClassVar
from urllib.parse import parse_qsl

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from receiver.errors import AuthError
from receiver.http.problems import receiver_error_response
from receiver.state import ReceiverState

ACCESS_TOKEN_PARAM = "access_token"  # noqa: S105 - a parameter name, not a secret
_QUERY_TOKEN_METHODS = frozenset({"GET", "HEAD"})


def key_matches(presented: bytes, keys: Sequence[str]) -> bool:
    """Constant-time against every key: no early exit reveals which key (or prefix) matched."""
    matches = [hmac.compare_digest(presented, key.encode("utf-8")) for key in keys]
    return any(matches)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _query_token(scope: Scope) -> str | None:
    query: str = scope.get("query_string", b"").decode("latin-1")
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == ACCESS_TOKEN_PARAM:
            return value
    return None


def presented_key(scope: Scope) -> bytes:
    """The key the request carries, or `AuthError` saying what is wrong with it."""
    authorization = _header(scope, b"authorization")
    if authorization is None:
        token = _query_token(scope) if scope["method"] in _QUERY_TOKEN_METHODS else None
        if token is None:
            raise AuthError(
                "missing Authorization header: send `Authorization: Bearer <key>`"
                f" (or ?{ACCESS_TOKEN_PARAM}=<key> on GET)"
            )
        return token.encode("utf-8")
    return bearer_credentials(authorization)


def bearer_credentials(authorization: str) -> bytes:
    """The key in an `Authorization: Bearer <key>` value, or `AuthError` saying what is wrong."""
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError("the Authorization scheme must be Bearer")
    if not credentials.strip():
        raise AuthError("the Bearer credentials are empty")
    # Header bytes arrive as latin-1; compare the raw bytes, whatever the key's charset.
    return credentials.strip().encode("latin-1")


def require_key(presented: bytes, keys: Sequence[str]) -> None:
    """Pass when `presented` is one of `keys`, else `AuthError`."""
    if not key_matches(presented, keys):
        raise AuthError("the API key is not valid")


def authenticate(scope: Scope, keys: Sequence[str]) -> None:
    """Pass when no keys are configured (anonymous reads) or the presented key is one of them."""
    if not keys:
        return
    require_key(presented_key(scope), keys)


class AuthGuard:
    """Route middleware: the request goes on only when `check` passes, else `refusal` answers.

    `openapi_schemes` and `openapi_refusals` are what the OpenAPI document says of a route
    it guards (`receiver/http/routing.py`), when the deployment requires a key.
    """

    openapi_schemes: ClassVar[Mapping[str, Mapping[str, str]]] = {}

    @classmethod
    def openapi_refusals(cls, method: str) -> dict[int, str]:
        return {}

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def check(self, scope: Scope, state: ReceiverState) -> None:
        raise NotImplementedError

    def refusal(self, scope: Scope, error: AuthError) -> Response:
        return receiver_error_response(error)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            state = scope["state"]["receiver"]
            assert isinstance(state, ReceiverState)
            try:
                self.check(scope, state)
            except AuthError as exc:
                await self.refusal(scope, exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class RequireBearer(AuthGuard):
    """Refuses a request with a 401 problem unless it carries a valid lookup API key."""

    openapi_schemes = {
        "bearerAuth": {"type": "http", "scheme": "bearer"},
        "accessToken": {"type": "apiKey", "in": "query", "name": ACCESS_TOKEN_PARAM},
    }

    @classmethod
    def openapi_refusals(cls, method: str) -> dict[int, str]:
        return {401: "Missing header, wrong scheme or unknown key (`WWW-Authenticate: Bearer`)."}

    def check(self, scope: Scope, state: ReceiverState) -> None:
        authenticate(scope, state.api_keys)

"""Who may see the dashboard: a valid bearer key (proxies, tests) or a valid session cookie.

Never a key in the URL. A browser without either is sent to the sign-in form; anything else
gets the same 401 problem as the lookup API. Keys come from the lifespan state; none
configured means reads were opened explicitly at start.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import Scope

from receiver.dashboard.sessions import SESSION_COOKIE, dashboard_sessions
from receiver.errors import AuthError, SessionInvalid
from receiver.http.auth import AuthGuard, bearer_credentials, require_key
from receiver.http.problems import receiver_error_response
from receiver.state import ReceiverState

__all__ = [
    "SIGN_IN_PATH",
    "RequireDashboardAccess",
    "authorize_dashboard",
    "mount_prefix",
    "safe_next",
]

SIGN_IN_PATH = "/dashboard/sign-in"
DEFAULT_NEXT = "/dashboard"
# Old links carried the key as ?access_token=; it must not travel on into a redirect.
_DROPPED_QUERY_PARAMS = frozenset({"access_token"})


def mount_prefix(scope: Scope) -> str:
    """Where the receiver is mounted in a host app (`/hooks`), or `""`: every dashboard link,
    redirect and cookie path starts with it."""
    root: str = scope.get("root_path", "")
    return root.rstrip("/")


def authorize_dashboard(request: Request, state: ReceiverState) -> None:
    """Pass, or raise `AuthError`. A wrong header is not rescued by a good cookie."""
    if not state.api_keys:
        return
    authorization = request.headers.get("authorization")
    if authorization is not None:
        require_key(bearer_credentials(authorization), state.api_keys)
        return
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is None:
        raise AuthError(
            "missing Authorization header or session cookie: "
            f"sign in at {SIGN_IN_PATH}, or send `Authorization: Bearer <key>`"
        )
    verdict = dashboard_sessions(request).verify(cookie)
    if verdict == "expired":
        raise SessionInvalid("the dashboard session has expired: sign in again", reason="expired")
    if verdict != "valid":
        raise SessionInvalid("the dashboard session is not valid: sign in again", reason="invalid")


def safe_next(target: str | None, prefix: str = "") -> str:
    """Where to go after signing in: a dashboard path on this site, nothing else."""
    home = prefix + DEFAULT_NEXT
    if (
        target is None
        or not target.startswith(home)
        or "\\" in target
        or any(ord(char) < 0x20 for char in target)
    ):
        return home
    return target


def _wants_html(request: Request) -> bool:
    return request.method in ("GET", "HEAD") and "text/html" in request.headers.get("accept", "")


def _next_of(request: Request) -> str:
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in _DROPPED_QUERY_PARAMS]
    return request.url.path + (f"?{urlencode(kept)}" if kept else "")


def sign_in_redirect(request: Request, error: AuthError) -> Response:
    query = {"next": _next_of(request)}
    if isinstance(error, SessionInvalid):
        query["error"] = error.reason
    # 303, not 401: a browser shows the form, and its console stays free of failed loads.
    sign_in_path = mount_prefix(request.scope) + SIGN_IN_PATH
    return RedirectResponse(f"{sign_in_path}?{urlencode(query)}", status_code=303)


class RequireDashboardAccess(AuthGuard):
    """Route middleware: the request goes on only with a valid key or session."""

    openapi_schemes = {
        "bearerAuth": {"type": "http", "scheme": "bearer"},
        "dashboardSession": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
    }

    @classmethod
    def openapi_refusals(cls, method: str) -> dict[int, str]:
        refusals = {401: "Missing or wrong key, or no valid session (`WWW-Authenticate: Bearer`)."}
        if method in ("GET", "HEAD"):
            refusals[303] = "A browser (Accept: text/html) without a session goes to sign-in."
        return refusals

    def check(self, scope: Scope, state: ReceiverState) -> None:
        authorize_dashboard(Request(scope), state)

    def refusal(self, scope: Scope, error: AuthError) -> Response:
        request = Request(scope)
        return (
            sign_in_redirect(request, error)
            if _wants_html(request)
            else receiver_error_response(error)
        )

"""`POST /dashboard/sign-in` and `POST /dashboard/sign-out`: the session cookie's life.

The key travels once, in a form body, never in a URL; the cookie it buys is HttpOnly
(no script reads it), SameSite=Strict (no other site's page sends it), Secure over https,
scoped to /dashboard and expiring. A post from another site's page is refused.
"""

from __future__ import annotations

from typing import NotRequired
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from typing_extensions import TypedDict

from receiver.dashboard.access import SIGN_IN_PATH, mount_prefix, safe_next
from receiver.dashboard.origin import require_same_origin
from receiver.dashboard.sessions import SESSION_COOKIE, SESSION_PATH, dashboard_sessions
from receiver.ingest.body import declared_length, read_body
from receiver.state import ReceiverState, receiver_state
from vlmhooks.errors import UnsupportedMediaType

__all__ = ["FORM_MEDIA_TYPE", "SignInForm", "sign_in", "sign_out"]

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
# A key and a return path; anything longer is not our form.
MAX_FORM_BYTES = 8 * 1024


class SignInForm(TypedDict):
    """The sign-in form's fields."""

    key: str
    next: NotRequired[str]


async def _read_form(request: Request) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise UnsupportedMediaType(f"expected {FORM_MEDIA_TYPE}, got {media_type or 'none'}")
    declared_length(request.headers.get("content-length"), limit=MAX_FORM_BYTES)
    body = await read_body(request.receive, limit=MAX_FORM_BYTES)
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def _is_https(request: Request, state: ReceiverState) -> bool:
    # Behind a TLS-terminating proxy the scheme comes from X-Forwarded-Proto (uvicorn's
    # proxy_headers); the public URL covers a proxy that does not send it.
    return request.url.scheme == "https" or state.settings.public_url.startswith("https://")


async def sign_in(request: Request) -> Response:
    """Check the key from the form; on success set the cookie and go where the user was going."""
    state = receiver_state(request)
    require_same_origin(request, state)
    form = await _read_form(request)
    prefix = mount_prefix(request.scope)
    target = safe_next(form.get("next"), prefix)
    if not state.api_keys:  # reads were opened explicitly: there is nothing to sign in to
        return RedirectResponse(target, status_code=303)
    sessions = dashboard_sessions(request)
    cookie = sessions.sign_in(form.get("key", ""))
    if cookie is None:
        query = urlencode({"error": "wrong-key", "next": target})
        return RedirectResponse(f"{prefix}{SIGN_IN_PATH}?{query}", status_code=303)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=sessions.max_age,
        path=prefix + SESSION_PATH,
        secure=_is_https(request, state),
        httponly=True,
        samesite="strict",
    )
    return response


async def sign_out(request: Request) -> Response:
    """Forget the cookie in this browser. Sessions are stateless: a copied cookie lives on
    until it expires, or until its key is dropped from VLMHOOKS_API_KEYS."""
    state = receiver_state(request)
    require_same_origin(request, state)
    prefix = mount_prefix(request.scope)
    response = RedirectResponse(f"{prefix}{SIGN_IN_PATH}?signed_out=1", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE,
        path=prefix + SESSION_PATH,
        secure=_is_https(request, state),
        httponly=True,
        samesite="strict",
    )
    return response

"""The dashboard's check against cross-site requests, for every post that changes something:
sign-in, sign-out and replay. The session cookie is SameSite=Strict already; this refuses
what a browser says came from another site's page, whatever cookie policy it follows.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request

from receiver.errors import CrossSiteForm
from receiver.state import ReceiverState

__all__ = ["require_same_origin"]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def require_same_origin(request: Request, state: ReceiverState) -> None:
    """Pass, or raise `CrossSiteForm` (403)."""
    # Sec-Fetch-Site is set by the browser and unaffected by our no-referrer policy, under
    # which a form post carries `Origin: null`; Origin is the fallback for older browsers.
    # A tool that sends neither is not a cross-site page.
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site != "same-origin":
            raise CrossSiteForm(f"posted from a {fetch_site} page, not from this site")
        return
    origin = request.headers.get("origin")
    if origin is None:
        return
    allowed = {_origin(str(request.base_url)), _origin(state.settings.public_url)}
    if origin.lower() not in allowed:
        raise CrossSiteForm(f"posted from {origin}, not from this site")

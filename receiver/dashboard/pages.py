"""The dashboard's HTML pages and their static assets, plain files from `receiver/static/`.

The pages hold no data: their scripts fetch it as JSON and write it into the DOM as text,
so no server-side template ever mixes markup with what a sender sent. No build step, no CDN.
"""

from __future__ import annotations

import functools
import hashlib
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response

from receiver.dashboard.access import mount_prefix
from vlmhooks.errors import NotFound

__all__ = ["ASSETS", "overview_page", "prediction_page", "sign_in_page", "static_asset"]

_TEXT = "; charset=utf-8"
# An allow-list, not a directory: the URL can name nothing else in the package.
ASSETS = {
    "dashboard.css": "text/css" + _TEXT,
    "common.js": "text/javascript" + _TEXT,
    "overview.js": "text/javascript" + _TEXT,
    "prediction.js": "text/javascript" + _TEXT,
    "signin.js": "text/javascript" + _TEXT,
    "favicon.svg": "image/svg+xml",
}
HTML = "text/html" + _TEXT


# Every link in the pages and scripts is written as a quoted absolute path; mounted in a host
# app (`/hooks`), each is served with the mount's prefix in front.
_LINK = b'"/dashboard'


# Bounded: the prefix comes from the host app (or --root-path), a handful at most.
@functools.lru_cache(maxsize=64)
def _read(name: str, prefix: str = "") -> tuple[bytes, str]:
    content = files("receiver").joinpath("static", name).read_bytes()
    if prefix:
        content = content.replace(_LINK, b'"' + prefix.encode() + _LINK[1:])
    return content, '"' + hashlib.sha256(content).hexdigest()[:20] + '"'


def _page(name: str, request: Request) -> Response:
    content, _ = _read(name, mount_prefix(request.scope))
    return Response(content, media_type=HTML, headers={"Cache-Control": "no-store"})


async def overview_page(request: Request) -> Response:
    return _page("overview.html", request)


async def prediction_page(request: Request) -> Response:
    return _page("prediction.html", request)


async def sign_in_page(request: Request) -> Response:
    return _page("signin.html", request)


async def static_asset(request: Request) -> Response:
    """`GET /dashboard/static/{name}`: revalidated by ETag, so a new release shows at once."""
    name: str = request.path_params["name"]
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no dashboard asset named {name!r}")
    content, etag = _read(name, mount_prefix(request.scope))
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(content, media_type=media_type, headers=headers)

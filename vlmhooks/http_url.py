"""The one check of a configured http(s) URL (a server to call), answered as a `ConfigError`."""

from __future__ import annotations

from urllib.parse import urlsplit

from vlmhooks.errors import ConfigError

__all__ = ["require_http_url"]


def require_http_url(url: str, setting: str) -> str:
    """`url` if it is http(s) with a host and, when given, a numeric port in range; else a
    `ConfigError` naming `setting` (the flag or variable it came from).

    Checked up front because the HTTP client would fail later and less clearly (httpx
    raises `InvalidURL`, or the request goes nowhere). User info is allowed: a server
    behind basic auth is reached as `https://user:password@host`.
    """
    try:
        parts = urlsplit(url)
        _ = parts.port  # a ValueError when out of range or not a number
    except ValueError:  # e.g. "http://[::1": urlsplit raises instead of returning parts
        parts = None
    # The host name, not the netloc: "http://user@" and "http://:80" have a netloc, no host.
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{setting} must be an http(s) URL, got {url!r}")
    return url

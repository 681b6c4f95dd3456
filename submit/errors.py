"""The submitter's exception tree; every failure a user can cause becomes one clear CLI line.

    ConfigError (vlmhooks.errors)     a required setting is missing or invalid; names the env var

    SubmitError
    ├── WaitTimeout                   predictions still not terminal when ``--wait`` gave up
    ├── ImageError                    an image input cannot be sent; ``source`` names it
    │   ├── ImageNotFound             missing path
    │   ├── ImageUnreadable           not a regular file, permission denied, I/O error
    │   ├── UnsupportedImage          content is not PNG/JPEG/WebP/GIF/BMP/TIFF
    │   └── ImageTooLarge             over the size cap; carries ``size`` and ``limit``
    └── ApiError                      the API answered badly or not at all
        ├── AuthenticationError  401  missing or wrong API key
        ├── RateLimited          429  carries ``retry_after`` (seconds) when the API sent one
        ├── ServerError          5xx  carries ``retry_after`` too (503 may send one)
        ├── BadRequest           4xx  any other client error (422 contract violations, ...)
        │   └── NotFound         404  no such prediction
        ├── UnexpectedResponse   2xx  a success whose body is not the contract's shape
        └── TransportError            connect error, timeout; ``status_code`` is None

Map foreign exceptions (httpx, OSError) at the boundary with ``raise ... from exc``;
``api_error_for_status`` picks the class for an HTTP status.
"""

from __future__ import annotations

from vlmhooks.errors import ConfigError

__all__ = [
    "ApiError",
    "AuthenticationError",
    "BadRequest",
    "ConfigError",
    "ImageError",
    "ImageNotFound",
    "ImageTooLarge",
    "ImageUnreadable",
    "NotFound",
    "RateLimited",
    "ServerError",
    "SubmitError",
    "TransportError",
    "UnexpectedResponse",
    "UnsupportedImage",
    "WaitTimeout",
    "api_error_for_status",
]


class SubmitError(Exception):
    """Root of every error the submitter raises on purpose."""


class WaitTimeout(SubmitError):
    """Some predictions were still not terminal when the wait ran out; ``pending`` names them."""

    def __init__(self, message: str, *, pending: tuple[str, ...]) -> None:
        super().__init__(message)
        self.pending = pending


# -- image inputs -------------------------------------------------------------------------


class ImageError(SubmitError):
    """An image input cannot be sent. ``source`` is the path, URL or ``<bytes>`` label."""

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(message)
        self.message = message
        self.source = source


class ImageNotFound(ImageError):
    """The path does not exist (or vanished between expansion and encoding)."""


class ImageUnreadable(ImageError):
    """The path exists but cannot be read as a regular file."""


class UnsupportedImage(ImageError):
    """The content's magic bytes are not one of the supported image formats."""


class ImageTooLarge(ImageError):
    """The image is over the size cap."""

    def __init__(self, message: str, *, source: str, size: int, limit: int) -> None:
        super().__init__(message, source=source)
        self.size = size
        self.limit = limit


# -- API responses ------------------------------------------------------------------------


class ApiError(SubmitError):
    """The API refused the request or could not be reached."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message if status_code is None else f"HTTP {status_code}: {message}")
        self.message = message
        self.status_code = status_code


class AuthenticationError(ApiError):
    """401: the API key is missing or wrong."""


class RateLimited(ApiError):
    """429: slow down; ``retry_after`` is in seconds when the API said."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the API failed; usually worth a retry. ``retry_after`` as for ``RateLimited``."""

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class BadRequest(ApiError):
    """Any other 4xx: the request itself is wrong; retrying will not help."""


class NotFound(BadRequest):
    """404: no such prediction (or endpoint)."""


class UnexpectedResponse(ApiError):
    """A 2xx whose body is not JSON of the contract's shape; retrying will not help."""


class TransportError(ApiError):
    """No HTTP answer at all: connection refused, DNS, TLS, timeout."""


def api_error_for_status(
    status_code: int, message: str, *, retry_after: float | None = None
) -> ApiError:
    """The ``ApiError`` subclass matching an HTTP error status."""
    if status_code == 401:
        return AuthenticationError(message, status_code=status_code)
    if status_code == 429:
        return RateLimited(message, status_code=status_code, retry_after=retry_after)
    if 500 <= status_code <= 599:
        return ServerError(message, status_code=status_code, retry_after=retry_after)
    if status_code == 404:
        return NotFound(message, status_code=status_code)
    if 400 <= status_code <= 499:
        return BadRequest(message, status_code=status_code)
    return ApiError(message, status_code=status_code)

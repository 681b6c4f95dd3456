"""HTTP clients on httpx: the VLM Run API (sync and async) and the receiver's lookup API.

Every foreign failure is mapped here, at the boundary, to the ``submit.errors`` tree with
the server's own message; retries follow a ``submit.retry.RetryPolicy``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from pydantic import ValidationError

from schemas.contract import PredictionRequest, PredictionResponse
from submit.errors import (
    AuthenticationError,
    ConfigError,
    TransportError,
    UnexpectedResponse,
    api_error_for_status,
)
from submit.retry import RetryPolicy, acall_with_retries, call_with_retries, parse_retry_after

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "CONNECT_TIMEOUT_SECONDS",
    "DEFAULT_BASE_URL",
    "GENERATE_TIMEOUT_SECONDS",
    "READ_TIMEOUT_SECONDS",
    "RECEIVER_KEY_ENV",
    "AsyncVlmRunClient",
    "ReceiverClient",
    "VlmRunClient",
]

DEFAULT_BASE_URL = "https://api.vlm.run/v1"
API_KEY_ENV = "VLMRUN_API_KEY"
BASE_URL_ENV = "VLMRUN_BASE_URL"
RECEIVER_KEY_ENV = "VLMHOOKS_API_KEY"

CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 30.0
# `batch: false` holds the connection open while the model runs; uploads may be large.
GENERATE_TIMEOUT_SECONDS = 120.0
# A long-poll (`?wait=N`) is answered after N seconds at the latest; allow that plus slack.
LONG_POLL_SLACK_SECONDS = 10.0

_USER_AGENT = "vlmhooks-submit/0.1"
_MESSAGE_LIMIT = 300

DEFAULT_TIMEOUT = httpx.Timeout(READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
GENERATE_TIMEOUT = httpx.Timeout(GENERATE_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)


# -- configuration -------------------------------------------------------------------------


def resolve_base_url(base_url: str | None, *, env: str = BASE_URL_ENV) -> str:
    """The argument, else the environment, else the public API; must be http(s)."""
    url = (base_url or os.environ.get(env) or DEFAULT_BASE_URL).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{env} must be an http(s) URL, got {url!r}")
    return url


def resolve_api_key(api_key: str | None, *, env: str = API_KEY_ENV) -> str:
    """The argument, else the environment variable; its absence is a ``ConfigError`` naming it."""
    key = api_key if api_key is not None else os.environ.get(env, "")
    if not key.strip():
        raise ConfigError(f"{env} is not set: the API key to authenticate with")
    return key.strip()


def _headers(api_key: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {api_key}",
        "Accept": "application/json",
        "User-Agent": _USER_AGENT,
    }


# -- response mapping ----------------------------------------------------------------------


def api_message(response: httpx.Response) -> str:
    """The server's own words: ``detail``/``message`` of a JSON body, else the text or reason."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("detail", "message", "error", "title"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return _clip(value.strip())
            if isinstance(value, list) and value:
                return _clip("; ".join(_field_error(item) for item in value))
    text = response.text.strip()
    return _clip(text) if text else (response.reason_phrase or "no message")


def _field_error(item: object) -> str:
    # FastAPI's 422 items are {"loc": [...], "msg": ...}; the receiver's {"field", "message"}.
    if not isinstance(item, dict):
        return str(item)
    loc = item.get("loc") or item.get("field")
    where = ".".join(str(part) for part in loc) if isinstance(loc, list) else loc
    message = item.get("msg") or item.get("message") or item
    return f"{where}: {message}" if where else str(message)


def _clip(text: str) -> str:
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."


def raise_for_api_status(response: httpx.Response, *, key_env: str) -> None:
    """Map a non-2xx answer to the ``ApiError`` subclass for its status."""
    if response.is_success:
        return
    message = api_message(response)
    if response.status_code == 401:
        raise AuthenticationError(
            f"the API key was rejected ({message}); check {key_env}",
            status_code=401,
        )
    retry_after = parse_retry_after(response.headers.get("retry-after"), now=datetime.now(UTC))
    raise api_error_for_status(response.status_code, message, retry_after=retry_after)


def transport_error(exc: httpx.TransportError, url: str) -> TransportError:
    if isinstance(exc, httpx.TimeoutException):
        return TransportError(f"timed out talking to {url} ({type(exc).__name__})")
    return TransportError(f"cannot reach {url}: {exc or type(exc).__name__}")


def parse_prediction(response: httpx.Response) -> PredictionResponse:
    """A 2xx body as a ``PredictionResponse``; anything else is ``UnexpectedResponse``."""
    try:
        return PredictionResponse.model_validate_json(response.content)
    except ValidationError as exc:
        raise UnexpectedResponse(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code} with a body that is not a prediction: "
            f"{_clip(str(exc.errors(include_url=False)[0]['msg']))}",
            status_code=response.status_code,
        ) from exc


def parse_json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise UnexpectedResponse(
            f"{response.request.url.path} answered {response.status_code} without JSON",
            status_code=response.status_code,
        ) from exc
    if not isinstance(body, dict):
        raise UnexpectedResponse(
            f"{response.request.url.path} answered {response.status_code} with a JSON "
            f"{type(body).__name__}, not an object",
            status_code=response.status_code,
        )
    return body


def encode_request(request: PredictionRequest) -> bytes:
    """The JSON body, made once: every retry sends these exact bytes, so the same ``id``."""
    return request.model_dump_json(exclude_none=True).encode()


def _prediction_path(prediction_id: str) -> str:
    if not prediction_id:
        raise ValueError("prediction_id must not be empty")
    return f"/predictions/{quote(prediction_id, safe='')}"


# -- the VLM Run API -----------------------------------------------------------------------


class VlmRunClient:
    """Synchronous client of the VLM Run API; thread-safe, so one can serve a thread pool."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=_headers(resolve_api_key(api_key)),
            timeout=DEFAULT_TIMEOUT,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"VlmRunClient(base_url={self.base_url!r})"

    def __enter__(self) -> VlmRunClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def generate(self, request: PredictionRequest) -> PredictionResponse:
        """``POST /image/generate``: 201 with the prediction (enqueued, or done for batch=false)."""
        body = encode_request(request)
        response = self._send(
            "POST",
            "/image/generate",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=GENERATE_TIMEOUT,
        )
        return parse_prediction(response)

    def get_prediction(self, prediction_id: str) -> PredictionResponse:
        """``GET /predictions/{id}``: the prediction as the API holds it now."""
        return parse_prediction(self._send("GET", _prediction_path(prediction_id)))

    def health(self) -> dict[str, Any]:
        """``GET /health``, as JSON."""
        return parse_json_object(self._send("GET", "/health"))

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        def attempt() -> httpx.Response:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise transport_error(exc, self.base_url) from exc
            raise_for_api_status(response, key_env=API_KEY_ENV)
            return response

        return call_with_retries(attempt, self._retry, self._sleep)


class AsyncVlmRunClient:
    """Asynchronous client of the VLM Run API, the same calls as ``VlmRunClient``."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=_headers(resolve_api_key(api_key)),
            timeout=DEFAULT_TIMEOUT,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"AsyncVlmRunClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> AsyncVlmRunClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def generate(self, request: PredictionRequest) -> PredictionResponse:
        """``POST /image/generate``: 201 with the prediction (enqueued, or done for batch=false)."""
        body = encode_request(request)
        response = await self._send(
            "POST",
            "/image/generate",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=GENERATE_TIMEOUT,
        )
        return parse_prediction(response)

    async def get_prediction(self, prediction_id: str) -> PredictionResponse:
        """``GET /predictions/{id}``: the prediction as the API holds it now."""
        return parse_prediction(await self._send("GET", _prediction_path(prediction_id)))

    async def health(self) -> dict[str, Any]:
        """``GET /health``, as JSON."""
        return parse_json_object(await self._send("GET", "/health"))

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def attempt() -> httpx.Response:
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise transport_error(exc, self.base_url) from exc
            raise_for_api_status(response, key_env=API_KEY_ENV)
            return response

        return await acall_with_retries(attempt, self._retry, self._sleep)


# -- the receiver's lookup API -------------------------------------------------------------


class ReceiverClient:
    """Reads predictions back from a vlmhooks receiver (``GET /v1/predictions/{id}``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = resolve_base_url(base_url, env="--receiver-url")
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=_headers(resolve_api_key(api_key, env=RECEIVER_KEY_ENV)),
            timeout=DEFAULT_TIMEOUT,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"ReceiverClient(base_url={self.base_url!r})"

    def __enter__(self) -> ReceiverClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def get_prediction(self, prediction_id: str, *, wait: float = 0) -> dict[str, Any]:
        """The stored prediction; with ``wait`` the receiver holds the request up to that many
        seconds for it to become terminal. Raises ``NotFound`` when it has not arrived yet."""
        params = {"wait": f"{wait:g}"} if wait > 0 else {}
        timeout = httpx.Timeout(
            READ_TIMEOUT_SECONDS + wait + LONG_POLL_SLACK_SECONDS, connect=CONNECT_TIMEOUT_SECONDS
        )
        path = "/v1" + _prediction_path(prediction_id)

        def attempt() -> httpx.Response:
            try:
                response = self._http.get(path, params=params, timeout=timeout)
            except httpx.TransportError as exc:
                raise transport_error(exc, self.base_url) from exc
            raise_for_api_status(response, key_env=RECEIVER_KEY_ENV)
            return response

        return parse_json_object(call_with_retries(attempt, self._retry, self._sleep))

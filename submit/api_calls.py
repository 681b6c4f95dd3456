"""The API calls as data, no I/O: what each request sends, and how an answer becomes a result
or one of the ``submit.errors``. The sync and async clients in ``submit.client`` share it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError

from schemas.contract import PredictionRequest, PredictionResponse
from submit.errors import (
    AuthenticationError,
    ConfigError,
    TransportError,
    UnexpectedResponse,
    api_error_for_status,
)
from vlmhooks.http_url import require_http_url
from vlmhooks.retry_timing import parse_retry_after
from vlmhooks.settings import DEFAULT_VLMRUN_BASE_URL

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "CONNECT_TIMEOUT_SECONDS",
    "DEFAULT_TIMEOUT",
    "GENERATE_TIMEOUT",
    "GENERATE_TIMEOUT_SECONDS",
    "LONG_POLL_SLACK_SECONDS",
    "READ_TIMEOUT_SECONDS",
    "RECEIVER_KEY_ENV",
    "ApiCall",
    "Endpoint",
    "StoredPage",
    "api_message",
    "encode_request",
    "generate_call",
    "health_call",
    "parse_json_object",
    "parse_prediction",
    "parse_prediction_list",
    "prediction_call",
    "predictions_call",
    "raise_for_api_status",
    "resolve_api_key",
    "resolve_base_url",
    "stored_prediction_call",
    "stored_predictions_call",
    "transport_error",
]

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

T = TypeVar("T")


# -- configuration -------------------------------------------------------------------------


def resolve_base_url(base_url: str | None, *, env: str = BASE_URL_ENV) -> str:
    """The argument, else the environment, else the public API; must be http(s)."""
    url = (base_url or os.environ.get(env) or DEFAULT_VLMRUN_BASE_URL).strip().rstrip("/")
    return require_http_url(url, env)


def resolve_api_key(api_key: str | None, *, env: str = API_KEY_ENV) -> str:
    """The argument, else the environment variable; its absence is a ``ConfigError`` naming it."""
    key = api_key if api_key is not None else os.environ.get(env, "")
    if not key.strip():
        raise ConfigError(f"{env} is not set: the API key to authenticate with")
    return key.strip()


@dataclass(frozen=True)
class Endpoint:
    """One server, resolved once: its URL, the headers every request carries, and the variable
    a rejected key is blamed on."""

    base_url: str
    headers: Mapping[str, str]
    key_env: str

    @classmethod
    def resolve(
        cls, api_key: str | None, base_url: str | None, *, key_env: str, url_env: str
    ) -> Endpoint:
        url = resolve_base_url(base_url, env=url_env)
        key = resolve_api_key(api_key, env=key_env)
        headers = {
            "Authorization": f"Bearer {key}",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        return cls(url, headers, key_env)

    def __repr__(self) -> str:  # the headers hold the key
        return f"Endpoint(base_url={self.base_url!r})"

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client`` and ``httpx.AsyncClient`` alike."""
        return {
            "base_url": self.base_url,
            "headers": dict(self.headers),
            "timeout": DEFAULT_TIMEOUT,
        }

    def check(self, response: httpx.Response) -> httpx.Response:
        """The response when 2xx, else the ``ApiError`` for its status."""
        raise_for_api_status(response, key_env=self.key_env)
        return response

    def transport_error(self, exc: httpx.TransportError) -> TransportError:
        return transport_error(exc, self.base_url)


# -- the calls -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiCall(Generic[T]):
    """One request to send (and resend on retry, byte for byte) and how to read its 2xx answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    params: Mapping[str, str] | None = None
    timeout: httpx.Timeout | None = None

    def request_options(self) -> dict[str, Any]:
        """Keyword arguments for ``request()`` on either httpx client; unset ones left out, so
        the client's defaults (such as its timeout) apply."""
        options: dict[str, Any] = {"method": self.method, "url": self.path}
        for name in ("content", "headers", "params", "timeout"):
            value = getattr(self, name)
            if value is not None:
                options[name] = value
        return options


def generate_call(request: PredictionRequest) -> ApiCall[PredictionResponse]:
    """``POST /image/generate``: 201 with the prediction (enqueued, or done for batch=false)."""
    return ApiCall(
        "POST",
        "/image/generate",
        parse_prediction,
        content=encode_request(request),
        headers={"Content-Type": "application/json"},
        timeout=GENERATE_TIMEOUT,
    )


def prediction_call(prediction_id: str) -> ApiCall[PredictionResponse]:
    """``GET /predictions/{id}``: the prediction as the API holds it now."""
    return ApiCall("GET", _prediction_path(prediction_id), parse_prediction)


def predictions_call(*, skip: int, limit: int) -> ApiCall[list[PredictionResponse]]:
    """``GET /predictions?skip=&limit=``: one page of the API's list, newest first."""
    params = {"skip": str(skip), "limit": str(limit)}
    return ApiCall("GET", "/predictions", parse_prediction_list, params=params)


def health_call() -> ApiCall[dict[str, Any]]:
    """``GET /health``, as JSON."""
    return ApiCall("GET", "/health", parse_json_object)


def stored_prediction_call(prediction_id: str, *, wait: float = 0) -> ApiCall[dict[str, Any]]:
    """A receiver's ``GET /v1/predictions/{id}[?wait=N]``, with a timeout that outlasts N."""
    return ApiCall(
        "GET",
        "/v1" + _prediction_path(prediction_id),
        parse_json_object,
        params={"wait": f"{wait:g}"} if wait > 0 else {},
        timeout=httpx.Timeout(
            READ_TIMEOUT_SECONDS + wait + LONG_POLL_SLACK_SECONDS, connect=CONNECT_TIMEOUT_SECONDS
        ),
    )


@dataclass(frozen=True)
class StoredPage:
    """One page of a receiver's `GET /v1/predictions`: the API's plain list, and the cursor
    of the next page from its `Link: <...>; rel="next"` header (None on the last page)."""

    predictions: list[dict[str, Any]]
    next_cursor: str | None


def parse_stored_page(response: httpx.Response) -> StoredPage:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        raise UnexpectedResponse(
            f"{response.request.url.path} answered {response.status_code} without a JSON list "
            "of predictions",
            status_code=response.status_code,
        )
    following = response.links.get("next")
    cursor = httpx.URL(following["url"]).params.get("cursor") if following else None
    return StoredPage(body, cursor)


def stored_predictions_call(
    *, limit: int, skip: int = 0, cursor: str | None = None, filters: Mapping[str, str] = {}
) -> ApiCall[StoredPage]:
    """A receiver's `GET /v1/predictions`: filters, `skip`/`limit` as the API takes them, and
    our keyset `cursor` (from the previous page's `Link` header)."""
    params = {**filters, "limit": str(limit)}
    if skip:
        params["skip"] = str(skip)
    if cursor is not None:
        params["cursor"] = cursor
    return ApiCall("GET", "/v1/predictions", parse_stored_page, params=params)


def encode_request(request: PredictionRequest) -> bytes:
    """The JSON body, made once: every retry sends these exact bytes, so the same ``id``."""
    return request.model_dump_json(exclude_none=True).encode()


def _prediction_path(prediction_id: str) -> str:
    if not prediction_id:
        raise ValueError("prediction_id must not be empty")
    return f"/predictions/{quote(prediction_id, safe='')}"


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
    retry_after = parse_retry_after(response.headers.get("retry-after"), now=time.time())
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


_PREDICTION_LIST = TypeAdapter(list[PredictionResponse])


def parse_prediction_list(response: httpx.Response) -> list[PredictionResponse]:
    """A 2xx body as a list of ``PredictionResponse``; anything else is ``UnexpectedResponse``."""
    try:
        return _PREDICTION_LIST.validate_json(response.content)
    except ValidationError as exc:
        raise UnexpectedResponse(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code} with a body that is not a list of predictions: "
            f"{_clip(str(exc.errors(include_url=False)[0]['msg']))}",
            status_code=response.status_code,
        ) from exc


def parse_json_object(response: httpx.Response) -> dict[str, Any]:
    """A 2xx body that must be a JSON object; anything else is ``UnexpectedResponse``."""
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

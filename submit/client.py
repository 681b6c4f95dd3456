"""HTTP clients on httpx: the VLM Run API (sync and async) and the receiver's lookup API.

What each call sends and how its answer maps to a result or a ``submit.errors`` exception is
``submit.api_calls``, written once; the senders here only add I/O and retries (a
``submit.retry.RetryPolicy``), one blocking and one async.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx

from schemas.contract import PredictionRequest, PredictionResponse
from submit.api_calls import (
    API_KEY_ENV,
    BASE_URL_ENV,
    CONNECT_TIMEOUT_SECONDS,
    GENERATE_TIMEOUT_SECONDS,
    READ_TIMEOUT_SECONDS,
    RECEIVER_KEY_ENV,
    ApiCall,
    Endpoint,
    StoredPage,
    generate_call,
    health_call,
    prediction_call,
    predictions_call,
    stored_prediction_call,
    stored_predictions_call,
)
from submit.retry import RetryPolicy, acall_with_retries, call_with_retries
from vlmhooks import tracing
from vlmhooks.settings import Settings

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "CONNECT_TIMEOUT_SECONDS",
    "GENERATE_TIMEOUT_SECONDS",
    "READ_TIMEOUT_SECONDS",
    "RECEIVER_KEY_ENV",
    "AsyncVlmRunClient",
    "ReceiverClient",
    "VlmRunClient",
    "client_from_settings",
]

T = TypeVar("T")


class _Sender:
    """Sends ``ApiCall``s over one ``httpx.Client``, retrying what the policy allows."""

    def __init__(
        self,
        endpoint: Endpoint,
        retry: RetryPolicy | None,
        transport: httpx.BaseTransport | None,
        sleep: Callable[[float], None],
    ) -> None:
        self._endpoint = endpoint
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.Client(**endpoint.client_options(), transport=transport)

    def close(self) -> None:
        self._http.close()

    def call(self, call: ApiCall[T]) -> T:
        def attempt() -> httpx.Response:
            try:
                if tracing.enabled:
                    with _request_span(self._http, call) as options:
                        response = _noted(self._http.request(**options))
                else:
                    response = self._http.request(**call.request_options())
            except httpx.TransportError as exc:
                raise self._endpoint.transport_error(exc) from exc
            return self._endpoint.check(response)

        return call.parse(call_with_retries(attempt, self._retry, self._sleep))


class _AsyncSender:
    """The async twin of ``_Sender``: the same calls over one ``httpx.AsyncClient``."""

    def __init__(
        self,
        endpoint: Endpoint,
        retry: RetryPolicy | None,
        transport: httpx.AsyncBaseTransport | None,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._endpoint = endpoint
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.AsyncClient(**endpoint.client_options(), transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, call: ApiCall[T]) -> T:
        async def attempt() -> httpx.Response:
            try:
                if tracing.enabled:
                    with _request_span(self._http, call) as options:
                        response = _noted(await self._http.request(**options))
                else:
                    response = await self._http.request(**call.request_options())
            except httpx.TransportError as exc:
                raise self._endpoint.transport_error(exc) from exc
            return self._endpoint.check(response)

        return call.parse(await acall_with_retries(attempt, self._retry, self._sleep))


@contextmanager
def _request_span(
    http: httpx.Client | httpx.AsyncClient, call: ApiCall[Any]
) -> Iterator[dict[str, Any]]:
    """A client span around one request (each retry its own), when tracing is on; yields the
    request's options with its W3C trace context added, for the server to continue."""
    attributes = {
        "http.request.method": call.method,
        "server.address": http.base_url.host,
        "url.path": call.path,
    }
    with tracing.start_span(call.method, kind="client", attributes=attributes):
        options = call.request_options()
        options["headers"] = {**(call.headers or {}), **(tracing.current_trace_context() or {})}
        yield options


def _noted(response: httpx.Response) -> httpx.Response:
    """`response`'s status on the current (request) span."""
    from opentelemetry import trace

    span = trace.get_current_span()
    span.set_attribute("http.response.status_code", response.status_code)
    if response.status_code >= 400:
        span.set_status(trace.StatusCode.ERROR)
    return response


def _api_endpoint(api_key: str | None, base_url: str | None) -> Endpoint:
    return Endpoint.resolve(api_key, base_url, key_env=API_KEY_ENV, url_env=BASE_URL_ENV)


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
        endpoint = _api_endpoint(api_key, base_url)
        self.base_url = endpoint.base_url
        self._sender = _Sender(endpoint, retry, transport, sleep)

    def __repr__(self) -> str:
        return f"VlmRunClient(base_url={self.base_url!r})"

    def __enter__(self) -> VlmRunClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._sender.close()

    def generate(self, request: PredictionRequest) -> PredictionResponse:
        """``POST /image/generate``: 201 with the prediction (enqueued, or done for batch=false)."""
        return self._sender.call(generate_call(request))

    def get_prediction(self, prediction_id: str) -> PredictionResponse:
        """``GET /predictions/{id}``: the prediction as the API holds it now."""
        return self._sender.call(prediction_call(prediction_id))

    def list_predictions(self, *, skip: int = 0, limit: int = 10) -> list[PredictionResponse]:
        """``GET /predictions``: one page of the API's list, newest first."""
        return self._sender.call(predictions_call(skip=skip, limit=limit))

    def health(self) -> dict[str, Any]:
        """``GET /health``, as JSON."""
        return self._sender.call(health_call())


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
        endpoint = _api_endpoint(api_key, base_url)
        self.base_url = endpoint.base_url
        self._sender = _AsyncSender(endpoint, retry, transport, sleep)

    def __repr__(self) -> str:
        return f"AsyncVlmRunClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> AsyncVlmRunClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._sender.aclose()

    async def generate(self, request: PredictionRequest) -> PredictionResponse:
        """``POST /image/generate``: 201 with the prediction (enqueued, or done for batch=false)."""
        return await self._sender.call(generate_call(request))

    async def get_prediction(self, prediction_id: str) -> PredictionResponse:
        """``GET /predictions/{id}``: the prediction as the API holds it now."""
        return await self._sender.call(prediction_call(prediction_id))

    async def health(self) -> dict[str, Any]:
        """``GET /health``, as JSON."""
        return await self._sender.call(health_call())


def client_from_settings(settings: Settings) -> VlmRunClient:
    """A ``VlmRunClient`` with the key and base URL of ``settings`` (VLMRUN_*)."""
    key = settings.vlmrun_api_key
    return VlmRunClient(None if key is None else key.get_secret_value(), settings.vlmrun_base_url)


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
        endpoint = Endpoint.resolve(
            api_key, base_url, key_env=RECEIVER_KEY_ENV, url_env="--receiver-url"
        )
        self.base_url = endpoint.base_url
        self._sender = _Sender(endpoint, retry, transport, sleep)

    def __repr__(self) -> str:
        return f"ReceiverClient(base_url={self.base_url!r})"

    def __enter__(self) -> ReceiverClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._sender.close()

    def get_prediction(self, prediction_id: str, *, wait: float = 0) -> dict[str, Any]:
        """The stored prediction; with ``wait`` the receiver holds the request up to that many
        seconds for it to become terminal. Raises ``NotFound`` when it has not arrived yet."""
        return self._sender.call(stored_prediction_call(prediction_id, wait=wait))

    def list_predictions(
        self,
        *,
        limit: int = 50,
        skip: int = 0,
        cursor: str | None = None,
        filters: Mapping[str, str] = {},
    ) -> StoredPage:
        """One page, newest first: a plain list (the API's shape) and the next page's cursor."""
        return self._sender.call(
            stored_predictions_call(limit=limit, skip=skip, cursor=cursor, filters=filters)
        )

    def iter_predictions(
        self, *, page_size: int = 200, filters: Mapping[str, str] = {}
    ) -> Iterator[dict[str, Any]]:
        """Every stored prediction, newest first, following the keyset cursor: nothing is
        skipped or repeated while callbacks keep arriving."""
        cursor: str | None = None
        while True:
            page = self.list_predictions(limit=page_size, cursor=cursor, filters=filters)
            yield from page.predictions
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

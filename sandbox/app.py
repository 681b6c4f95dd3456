"""The sandbox's Starlette app: the VLM Run prediction API on loopback, plus `/v1/sandbox/*`
introspection. Errors are FastAPI-shaped JSON, `{"detail": ...}`, like the real service's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.delivery import USER_AGENT, DeliveryPolicy
from sandbox.errors import FaultSyntaxError, PredictionFailed
from sandbox.faults import FAULTS_HEADER, FaultPlan, parse_faults
from sandbox.predictor import PillowPredictor, Predictor
from sandbox.settings import SandboxConfig
from sandbox.store import PredictionRecord, SandboxStore
from sandbox.worker import PredictionWorker
from schemas.contract import PredictionRequest

__all__ = ["DEFAULT_LIST_LIMIT", "MAX_LIST_LIMIT", "SandboxState", "create_sandbox_app"]

DEFAULT_LIST_LIMIT = 10  # the public SDK's default page
MAX_LIST_LIMIT = 1000
IMAGE_FETCH_CONNECTIONS = 16  # loopback image URLs share the callback client
DEFAULT_KEEPALIVE_CONNECTIONS = 20
# Sandbox-wide generate faults count every call under this key (request ids are per request).
_ALL_CALLS = "*"


@dataclass(frozen=True)
class SandboxState:
    """What the lifespan creates; handlers reach it as `request.state.sandbox`."""

    config: SandboxConfig
    store: SandboxStore
    worker: PredictionWorker


class _ApiError(Exception):
    """An error answer: `detail` is a message or a list of FastAPI-style field errors."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def create_sandbox_app(config: SandboxConfig, *, predictor: Predictor | None = None) -> Starlette:
    """The sandbox app; the store, HTTP client and workers live only inside its lifespan.

    `predictor` defaults to the deterministic `PillowPredictor`; a real model can stand in.
    """
    chosen_predictor = predictor if predictor is not None else PillowPredictor()

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Any]]:
        policy = DeliveryPolicy(
            max_attempts=config.max_attempts,
            backoff_base=config.backoff_base,
            timeout=config.delivery_timeout,
            vlmrun_secret=_secret(config.vlmrun_webhook_secret),
            standard_secret=_secret(config.standard_webhook_secret),
        )
        store = SandboxStore()
        # The worker's semaphore bounds callbacks in flight; the pool must not bound them
        # lower, or waiting for a connection would eat into an attempt's timeout.
        limits = httpx.Limits(
            max_connections=config.delivery_concurrency + IMAGE_FETCH_CONNECTIONS,
            max_keepalive_connections=DEFAULT_KEEPALIVE_CONNECTIONS,
        )
        async with httpx.AsyncClient(headers={"User-Agent": USER_AGENT}, limits=limits) as client:
            worker = PredictionWorker(
                store=store,
                predictor=chosen_predictor,
                client=client,
                policy=policy,
                concurrency=config.concurrency,
                delivery_concurrency=config.delivery_concurrency,
                processing_delay=config.processing_delay,
                deliver_intermediate=config.deliver_intermediate,
            )
            await worker.start()
            try:
                yield {"sandbox": SandboxState(config=config, store=store, worker=worker)}
            finally:
                await worker.stop()

    routes = [
        Route("/v1/image/generate", generate, methods=["POST"]),
        Route("/v1/predictions", list_predictions, methods=["GET"]),
        Route("/v1/predictions/{prediction_id}", get_prediction, methods=["GET"]),
        Route("/v1/health", health, methods=["GET"]),
        Route("/v1/sandbox/deliveries", list_deliveries, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            _ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
    )


# -- endpoints ----------------------------------------------------------------------------


async def generate(request: Request) -> Response:
    state = _state(request)
    _authorize(request, state.config)
    plan, per_request = _fault_plan(request, state.config)
    raw = await _read_json(request, state.config.max_request_bytes)
    try:
        prediction_request = PredictionRequest.model_validate(raw)
    except ValidationError as exc:
        raise _ApiError(422, _field_errors(exc, ("body",))) from exc

    _inject_generate_fault(state.store, plan, per_request, raw, request)

    fingerprint = _fingerprint(raw)
    existing = state.store.by_request_id(prediction_request.id)
    if existing is not None:
        return _replay(existing, fingerprint)

    record = PredictionRecord(
        id=str(uuid.uuid4()),
        request_id=prediction_request.id,
        fingerprint=fingerprint,
        domain=prediction_request.domain,
        created_at=prediction_request.created_at,
        images=prediction_request.images,
        config=prediction_request.config.model_dump(mode="json"),
        callback_url=prediction_request.callback_url,
        faults=plan,
    )
    if prediction_request.batch:
        state.store.add(record)
        state.worker.enqueue(record)
        return JSONResponse(record.to_wire(), status_code=201)

    # Synchronous: a bad image is the caller's error (422, naming the image), not a prediction.
    try:
        status, response = await state.worker.compute(record)
    except PredictionFailed as exc:
        # Without an image to blame (an unusable config), the whole body is.
        loc: list[str | int] = ["body"]
        if exc.image_index is not None:
            loc += ["images", exc.image_index]
        raise _ApiError(
            422, [{"loc": loc, "msg": exc.message, "type": "prediction_failed"}]
        ) from exc
    # A concurrent retry of the same request may have finished first; answer with its result.
    existing = state.store.by_request_id(prediction_request.id)
    if existing is not None:
        return _replay(existing, fingerprint)
    state.worker.finish(record, status, response)
    state.store.add(record)
    return JSONResponse(record.to_wire(), status_code=201)


async def get_prediction(request: Request) -> Response:
    state = _state(request)
    _authorize(request, state.config)
    prediction_id = request.path_params["prediction_id"]
    record = state.store.get(prediction_id)
    if record is None:
        raise _ApiError(404, f"prediction {prediction_id!r} not found")
    return JSONResponse(record.to_wire())


async def list_predictions(request: Request) -> Response:
    state = _state(request)
    _authorize(request, state.config)
    skip = _query_int(request, "skip", default=0, low=0, high=None)
    limit = _query_int(request, "limit", default=DEFAULT_LIST_LIMIT, low=1, high=MAX_LIST_LIMIT)
    records = state.store.newest_first(skip=skip, limit=limit)
    return JSONResponse([record.to_wire() for record in records])


async def health(_request: Request) -> Response:
    # Open without a key, like the real service's health check.
    return JSONResponse({"status": "ok", "sandbox": True})


async def list_deliveries(request: Request) -> Response:
    """Every callback attempt, oldest first; `?prediction_id=` narrows to one prediction."""
    state = _state(request)
    _authorize(request, state.config)
    prediction_id = request.query_params.get("prediction_id")
    attempts = state.store.attempts(prediction_id)
    return JSONResponse([attempt.to_json() for attempt in attempts])


# -- helpers ------------------------------------------------------------------------------


def _state(request: Request) -> SandboxState:
    state: SandboxState = request.state.sandbox
    return state


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def _authorize(request: Request, config: SandboxConfig) -> None:
    keys = config.api_key_values
    if not keys:
        return
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise _ApiError(401, "missing bearer API key", {"WWW-Authenticate": "Bearer"})
    candidate = presented.strip().encode()
    # Every key is compared, so the time taken does not say which one came close.
    matches = [hmac.compare_digest(candidate, key.encode()) for key in keys]
    if not any(matches):
        raise _ApiError(401, "invalid API key", {"WWW-Authenticate": "Bearer"})


def _fault_plan(request: Request, config: SandboxConfig) -> tuple[FaultPlan, bool]:
    """The request's plan (header) or the sandbox default; True when it came from the header."""
    header = request.headers.get(FAULTS_HEADER)
    if header is None:
        return config.default_faults, False
    try:
        return parse_faults(header), True
    except FaultSyntaxError as exc:
        raise _ApiError(400, f"{FAULTS_HEADER}: {exc}") from exc


def _inject_generate_fault(
    store: SandboxStore, plan: FaultPlan, per_request: bool, raw: Any, request: Request
) -> None:
    if not (plan.generate_503 or plan.generate_429):
        return
    # Per request, attempts are counted by the client's request id; a client that sends none
    # cannot retry "the same request", so its header text stands in as the key.
    key = _ALL_CALLS
    if per_request:
        request_id = raw.get("id") if isinstance(raw, dict) else None
        key = f"id:{request_id}" if request_id else f"header:{request.headers[FAULTS_HEADER]}"
    status = plan.generate_fault(store.count_generate_call(key))
    if status is None:
        return
    detail = (
        "sandbox fault injection: service unavailable, retry later"
        if status == 503
        else "sandbox fault injection: rate limit exceeded, retry later"
    )
    raise _ApiError(status, detail, {"Retry-After": str(plan.retry_after)})


async def _read_json(request: Request, max_bytes: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _ApiError(413, f"request body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _ApiError(413, f"request body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _ApiError(
            422, [{"loc": ["body"], "msg": f"JSON decode error: {exc}", "type": "json_invalid"}]
        ) from exc


def _field_errors(exc: ValidationError, prefix: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {"loc": [*prefix, *error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_input=False)
    ]


def _fingerprint(raw: Any) -> str:
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _replay(existing: PredictionRecord, fingerprint: str) -> Response:
    if existing.fingerprint != fingerprint:
        raise _ApiError(
            409,
            f"request id {existing.request_id!r} was already used for a different request; "
            "send a new id for a new request",
        )
    return JSONResponse(existing.to_wire(), status_code=201)


def _query_int(request: Request, name: str, *, default: int, low: int, high: int | None) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    bound = f" and at most {high}" if high is not None else ""
    message = f"Input should be a whole number of at least {low}{bound}"
    if not (text.isascii() and text.isdigit()):
        raise _ApiError(422, [{"loc": ["query", name], "msg": message, "type": "int_parsing"}])
    value = int(text)
    if value < low or (high is not None and value > high):
        raise _ApiError(422, [{"loc": ["query", name], "msg": message, "type": "int_range"}])
    return value


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _ApiError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)


async def _http_error(_request: Request, exc: Exception) -> Response:
    # Starlette's own 404/405 would be plain text; keep every error JSON.
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _unexpected_error(_request: Request, _exc: Exception) -> Response:
    # Never a traceback on the wire; uvicorn's log keeps it.
    return JSONResponse({"detail": "internal sandbox error; see the server log"}, status_code=500)

"""`POST /v1/callbacks/{token}`: verify (ARCHITECTURE.md, "Verification order"), store
through the group committer, and acknowledge only after the commit.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import ConfigDict, Field, with_config
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from typing_extensions import TypedDict

from receiver.errors import BodyTooLarge
from receiver.http.problems import problem_response, receiver_error_response
from receiver.http.routing import Answer, DocumentedRoute, Operation
from receiver.http.shapes import CallbackAck, SelfTestAck
from receiver.ingest.body import declared_length, read_body
from receiver.ingest.callback_span import CallbackNotes, traced_callback
from receiver.ingest.fetch_back import fetch_prediction
from receiver.ingest.selftest import answer_self_test
from receiver.ingest.verify import (
    HeaderPairs,
    require_json_content_type,
    verify_provider_signatures,
)
from receiver.state import ReceiverState, receiver_state
from receiver.writer.deadlines import CommitTimedOut
from receiver.writer.group_commit import WriterStopped
from schemas.contract import PredictionResponse
from schemas.enums import Status
from vlmhooks import tracing
from vlmhooks.errors import (
    PayloadError,
    PayloadTooLarge,
    PredictionConflict,
    ProblemError,
    StorageUnavailable,
    TokenInvalid,
)
from vlmhooks.ingest.prediction import decode_json, validate_prediction
from vlmhooks.ingest.storable import (
    MAX_PREDICTION_ID_CHARS,
    MAX_SUBMISSION_ID_CHARS,
    storable_content,
)
from vlmhooks.store.audit import delivery_record, log_rejected_delivery
from vlmhooks.store.batch import apply_prediction_writes, prediction_batch
from vlmhooks.store.records import DeliveryRecord, IngestOutcome, PredictionWrite
from vlmhooks.trust.signatures import VLMRUN_SIGNATURE_HEADER
from vlmhooks.trust.tokens import CALLBACK_PATH_PREFIX

__all__ = ["CALLBACK_PATH", "callback_endpoint", "callback_routes", "receive_callback"]

CALLBACK_PATH = CALLBACK_PATH_PREFIX + "{token}"
SOURCE_CALLBACK = "callback"
SOURCE_FETCH = "fetch"
STORAGE_RETRY_AFTER_SECONDS = 5

log = logging.getLogger("vlmhooks.callbacks")


_STANDARD = "Standard Webhooks; required when VLMHOOKS_STANDARD_WEBHOOK_SECRETS is set."


@with_config(ConfigDict(use_attribute_docstrings=True))
class CallbackHeaders(TypedDict, total=False):
    """The provider signatures a callback may carry (receiver/ingest/verify.py)."""

    vlmrun_signature: Annotated[str, Field(alias=VLMRUN_SIGNATURE_HEADER)]
    """`sha256=<hex HMAC-SHA256 of the raw body>`; required when
    VLMHOOKS_VLMRUN_WEBHOOK_SECRETS is set."""
    webhook_id: Annotated[str, Field(alias="webhook-id", description=_STANDARD)]
    webhook_timestamp: Annotated[str, Field(alias="webhook-timestamp", description=_STANDARD)]
    webhook_signature: Annotated[str, Field(alias="webhook-signature", description=_STANDARD)]


CALLBACK_OPERATION = Operation(
    "receiveCallback",
    "A prediction callback from the API",
    description="Verified by the callback token in the path, then by the provider signatures "
    "configured (`X-VLMRun-Signature`, Standard Webhooks). Answered only after the prediction "
    "is committed; a duplicate is acknowledged, not stored twice.",
    headers=CallbackHeaders,
    body=PredictionResponse,
    body_required=True,
    responses={
        200: Answer(
            "Stored (or a duplicate/stale delivery, acknowledged); for a `vlm-receiver check` "
            "self-test token, the self-test's answer (nothing stored).",
            CallbackAck | SelfTestAck,
        ),
        400: "Not JSON, or the body ended early.",
        401: "Bad or expired token, or a missing/wrong signature (a self-test's problem names "
        "the `piece` that failed).",
        409: "The prediction id contradicts the submission's.",
        413: "The body is over VLMHOOKS_MAX_BODY_BYTES.",
        415: "The content type is not JSON.",
        422: "The body breaks the PredictionResponse contract; `errors` lists fields.",
        502: "Fetch-back is on and the API could not be read back.",
        503: "No room for the body in time, or the database is unavailable (`Retry-After`).",
    },
)


def callback_routes(endpoint: ASGIApp) -> list[BaseRoute]:
    """The route, for the router, the OpenAPI document and `url_path_for`; `ReceiverApp`
    serves most callbacks before routing, through the same `endpoint`."""
    return [DocumentedRoute(CALLBACK_PATH, endpoint, name="callback", post=CALLBACK_OPERATION)]


async def callback_endpoint(
    scope: Scope, receive: Receive, send: Send, notes: CallbackNotes | None = None
) -> None:
    """`receive_callback` as a plain ASGI app: it runs outside Starlette's exception
    middleware (ARCHITECTURE.md, "The callback fast path"), so it turns the unexpected into a
    problem+json 500 itself.

    With tracing on, it runs again inside the callback's span, with `notes` to fill for it.
    """
    if notes is None and tracing.enabled:
        await traced_callback(scope, receive, send, callback_endpoint, route=CALLBACK_PATH)
        return
    response: ASGIApp
    try:
        response = await receive_callback(Request(scope, receive), notes)
    except ProblemError as exc:
        # The self-check's read (a database that failed or did not answer in time): its 503.
        response = receiver_error_response(exc)
    except Exception:
        log.exception("a callback failed unexpectedly")
        response = problem_response(
            500, "Internal Server Error", "unexpected error; see server logs"
        )
    await response(scope, receive, send)


async def receive_callback(request: Request, notes: CallbackNotes | None = None) -> ASGIApp:
    """Token, body cap, signatures, media type, JSON, contract, (fetch-back), conflict; ack.

    `notes`: filled with the ids and the verdict, for the callback's span when tracing is on.
    """
    started = time.perf_counter()
    state = receiver_state(request)
    try:
        submission_id = state.tokens.verify(request.path_params["token"])
        if len(submission_id) > MAX_SUBMISSION_ID_CHARS:
            # Authentic but unusable: no row could record it (see `vlm-receiver callback-url`).
            raise TokenInvalid(
                f"callback token names a submission id over {MAX_SUBMISSION_ID_CHARS} characters"
            )
    except ProblemError as exc:
        if type(exc) is TokenInvalid:
            # Only now, so callbacks never pay for it: `vlm-receiver check`'s own token.
            self_test = await answer_self_test(request, state)
            if self_test is not None:
                return self_test
        # No audit row: a request without a valid token must not be able to grow the audit
        # log. One rate-limited log line (never the token) tells the operator why.
        state.metrics.count_callback("rejected")
        state.refusals.record(exc, submission_id=None, prediction_id=None, authenticated=False)
        if notes is not None:
            notes.note(None, None, "rejected")
        return _closing(receiver_error_response(exc))

    received_at = datetime.fromtimestamp(state.clock(), UTC)
    # Decoded once, for the audit record, the signatures and the media type alike.
    headers = HeaderPairs(request.headers.items())
    delivery: DeliveryRecord | None = None
    claimed_id: str | None = None
    source = SOURCE_CALLBACK
    body = b""
    authenticated = False
    try:
        body = await _read_capped_body(request, headers, state.settings.max_body_bytes)
        delivery = delivery_record(body, headers.items(), body_cap=state.settings.delivery_body_cap)
        # The signature covers the raw bytes, so it is checked before anything reads them.
        webhook_id = verify_provider_signatures(
            body, headers, state.signature_policy, now=state.clock()
        )
        authenticated = True
        require_json_content_type(headers.get("content-type"))
        payload = decode_json(body)
        claimed_id = _claimed_id(payload)
        prediction = validate_prediction(payload, raw=body)
        if state.settings.fetch_back:
            assert state.http is not None, "the lifespan builds a client when fetch-back is on"
            source = SOURCE_FETCH
            prediction = await fetch_prediction(
                state.http, state.settings.vlmrun_base_url, prediction.id
            )
        # Here, not in the writer: a value too deep to encode is this request's 422, not a
        # failed batch.
        content_hash, content_bytes = storable_content(
            prediction, payload if source == SOURCE_CALLBACK else None
        )
    except ProblemError as exc:
        if delivery is None:
            head = exc.head if isinstance(exc, BodyTooLarge) else b""
            delivery = delivery_record(
                head, headers.items(), body_cap=state.settings.delivery_body_cap
            )
        elif authenticated:
            # Signed and refused (contract, JSON, media type, fetch-back): kept whole, up to
            # the body cap, so `vlm-receiver deliveries replay` can recover it after a fix
            # (ARCHITECTURE: replay). Unauthenticated bodies stay under the audit cap.
            delivery = delivery_record(
                body, headers.items(), body_cap=state.settings.max_body_bytes
            )
        await _log_rejection(state, exc, delivery, submission_id, claimed_id, source, received_at)
        if notes is not None:
            notes.note(submission_id, claimed_id, "rejected")
        response = receiver_error_response(exc)
        # The rest of an oversized body is never read: closing tells the sender to stop.
        return _closing(response) if isinstance(exc, PayloadTooLarge) else response

    write = PredictionWrite(
        prediction=prediction,
        submission_id=submission_id,
        source=source,
        received_at=received_at,
        delivery=delivery,
        webhook_id=webhook_id,
        content_sha256=content_hash,
        content_bytes=content_bytes,
    )
    # Batched with every other callback queued meanwhile; a conflict comes back as a value
    # (its rejected-delivery row already written in the same commit).
    try:
        outcome = await state.writer.run_batched(
            apply_prediction_writes, write, phases=prediction_batch
        )
    except (SQLAlchemyError, WriterStopped, CommitTimedOut) as exc:
        # CommitTimedOut: the write may still commit; the sender's retry is idempotent.
        log.error("could not store a callback: %s", exc)
        state.metrics.count_callback("error")
        if notes is not None:
            notes.note(submission_id, prediction.id, "error")
        response = receiver_error_response(
            StorageUnavailable("the callback could not be stored; retry later")
        )
        response.headers["retry-after"] = str(STORAGE_RETRY_AFTER_SECONDS)
        return response
    if isinstance(outcome, PredictionConflict):
        state.metrics.count_callback("rejected")
        state.refusals.record(outcome, submission_id=submission_id, prediction_id=prediction.id)
        if notes is not None:
            notes.note(submission_id, prediction.id, "rejected")
        return receiver_error_response(outcome)
    state.metrics.count_callback(outcome.verdict)
    state.metrics.ingest_latency.observe(time.perf_counter() - started)
    if notes is not None:
        notes.note(submission_id, outcome.prediction_id, outcome.verdict)
    return _acknowledgement(outcome)


async def _read_capped_body(request: Request, headers: HeaderPairs, limit: int) -> bytes:
    # Content-Length first, so an announced oversize body is refused without reading a byte.
    declared_length(headers.get("content-length"), limit=limit)
    try:
        return await read_body(request.receive, limit=limit)
    except ClientDisconnect as exc:
        raise PayloadError("the client disconnected before the body was complete") from exc


async def _log_rejection(
    state: ReceiverState,
    error: ProblemError,
    delivery: DeliveryRecord,
    submission_id: str,
    prediction_id: str | None,
    source: str,
    received_at: datetime,
) -> None:
    state.metrics.count_callback("rejected")
    state.refusals.record(error, submission_id=submission_id, prediction_id=prediction_id)

    def op(connection: Connection) -> None:
        log_rejected_delivery(
            connection,
            prediction_id=prediction_id,
            submission_id=submission_id,
            source=source,
            received_at=received_at,
            delivery=delivery,
            reason=f"{error.status} {error.title}: {error.detail}",
            http_status=error.status,
        )

    try:
        await state.writer.run(op)
    except (SQLAlchemyError, WriterStopped, CommitTimedOut):
        # The refusal stands (the sender's fault) even when its audit row cannot be written.
        log.warning("could not log a rejected delivery", exc_info=True)


def _claimed_id(payload: Any) -> str | None:
    """The prediction id a payload claims, for the audit row, before it is validated."""
    if isinstance(payload, dict):
        claimed = payload.get("id")
        if (
            isinstance(claimed, str)
            and 0 < len(claimed) <= MAX_PREDICTION_ID_CHARS
            and "\x00" not in claimed
        ):
            return claimed
    return None


def _acknowledgement(outcome: IngestOutcome) -> ASGIApp:
    ack: CallbackAck = {
        "id": outcome.prediction_id,
        "status": Status(outcome.status),
        "duplicate": outcome.verdict == "duplicate",
        "verdict": outcome.verdict,
    }
    return _Ack(orjson.dumps(ack))


class _Ack:
    """A 200 JSON answer sent as two ASGI messages: what `Response` does, minus building
    its headers one by one for every callback."""

    __slots__ = ("body",)

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __call__(self, _scope: Scope, _receive: Receive, send: Send) -> None:
        headers = [*_ACK_HEADERS, (b"content-length", str(len(self.body)).encode("ascii"))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


_ACK_HEADERS = ((b"content-type", b"application/json"),)


def _closing(response: Response) -> Response:
    response.headers["connection"] = "close"
    return response

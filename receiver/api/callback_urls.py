"""`POST /v1/callback-urls`: signed callback URLs for clients that call VLM Run themselves.

Services in other languages and serverless functions cannot import `mint_callback_url`;
they ask the receiver, with a lookup API key, and send each URL as one request's
`callback_url`. Minting writes nothing: the token carries the submission id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from receiver.errors import InvalidRequest, MintingDisabled
from receiver.http.auth import RequireBearer
from receiver.http.responses import json_response
from receiver.http.routing import Answer, DocumentedRoute, Operation
from receiver.http.shapes import MAX_CALLBACK_URLS, CallbackUrls, CallbackUrlsRequest
from receiver.ingest.body import declared_length, read_body
from receiver.ingest.verify import require_json_content_type
from receiver.state import receiver_state
from vlmhooks.errors import PayloadError
from vlmhooks.ingest.prediction import decode_json, invalid_fields
from vlmhooks.public import iso_utc
from vlmhooks.trust.tokens import mint_callback_urls

__all__ = ["CALLBACK_URLS_PATH", "MAX_REQUEST_BYTES", "callback_url_routes", "create_callback_urls"]

CALLBACK_URLS_PATH = "/v1/callback-urls"
# The request is two small fields; anything bigger is not a request for URLs.
MAX_REQUEST_BYTES = 4096


def parse_request(body: bytes, content_type: str | None) -> CallbackUrlsRequest:
    """An empty body asks for one URL; otherwise JSON (415/400) matching the schema (422)."""
    if not body.strip():
        return CallbackUrlsRequest()
    require_json_content_type(content_type)
    payload: Any = decode_json(body)
    if not isinstance(payload, dict):
        raise InvalidRequest(
            "the body must be a JSON object",
            errors=[{"field": "<root>", "message": "expected a JSON object"}],
        )
    try:
        request = CallbackUrlsRequest.model_validate(payload)
    except ValidationError as exc:
        raise invalid_fields(exc, InvalidRequest) from exc
    if request.submission_id is not None and request.count != 1:
        message = "a submission id binds exactly one callback URL"
        raise InvalidRequest(message, errors=[{"field": "count", "message": message}])
    return request


async def create_callback_urls(request: Request) -> Response:
    """201 with `count` signed URLs (or one bound to the given submission id)."""
    state = receiver_state(request)
    if not state.api_keys:
        raise MintingDisabled(
            "this receiver serves anonymous reads (no VLMHOOKS_API_KEYS); a callback URL is a "
            "credential, so set VLMHOOKS_API_KEYS to hand them out"
        )
    declared_length(request.headers.get("content-length"), limit=MAX_REQUEST_BYTES)
    try:
        raw = await read_body(request.receive, limit=MAX_REQUEST_BYTES)
    except ClientDisconnect as exc:
        raise PayloadError("the client disconnected before the body was complete") from exc
    wanted = parse_request(raw, request.headers.get("content-type"))
    minted = mint_callback_urls(
        state.settings.public_url, state.tokens, wanted.count, wanted.submission_id
    )
    body: CallbackUrls = {
        "callback_urls": [{"url": url, "submission_id": sid} for url, sid in minted],
        "expires_at": iso_utc(
            datetime.fromtimestamp(state.clock() + state.settings.token_max_age, tz=UTC)
        ),
    }
    return json_response(body, status_code=201)


def callback_url_routes() -> list[BaseRoute]:
    return [
        DocumentedRoute(
            CALLBACK_URLS_PATH,
            create_callback_urls,
            middleware=[Middleware(RequireBearer)],
            strict_query=True,
            post=Operation(
                "createCallbackUrls",
                "Freshly signed callback URLs, for clients that call VLM Run themselves",
                description="Each URL carries a signed token bound to a submission id (a fresh "
                "one per URL, or the one given, then `count` must be 1); send it as one "
                "request's `callback_url`. Nothing is stored. An empty body asks for one URL. "
                f"At most {MAX_CALLBACK_URLS} URLs per call; the body is at most "
                f"{MAX_REQUEST_BYTES} bytes. Refused (403) when the deployment has no API keys.",
                body=CallbackUrlsRequest,
                responses={
                    201: Answer("Minted.", CallbackUrls),
                    400: "Not JSON, or an unknown query parameter.",
                    403: "Anonymous reads are on and no API key is configured.",
                    413: "The body is too large.",
                    415: "The content type is not JSON.",
                    422: "The body breaks the request schema; `errors` lists fields.",
                },
            ),
        )
    ]

"""Self-test callbacks (`vlm-receiver check`): verified like any callback, answered, never stored.

A self-test token is signed with the callback-token keys under its own salt, so no callback
token can pass for one and the hot path never pays for it: the route tries it only after a
token failed. The checker proves it reaches *this* receiver by a marker row it writes in the
database first (`webhook_message`, under an id no sender can use): the receiver reports
whether it sees the marker.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from itsdangerous import BadData
from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.responses import Response

from receiver.http.problems import problem_response
from receiver.http.shapes import SelfTestAck
from receiver.ingest.body import declared_length, read_body
from receiver.ingest.verify import (
    SignaturePolicy,
    require_json_content_type,
    verify_provider_signatures,
)
from receiver.state import ReceiverState
from vlmhooks.errors import ProblemError
from vlmhooks.ingest.prediction import decode_json, validate_prediction
from vlmhooks.reads.bounded import call_within
from vlmhooks.store.tables import WEBHOOK_MESSAGE
from vlmhooks.trust.tokens import clocked_serializer

__all__ = [
    "SELF_TEST_MAX_AGE_SECONDS",
    "SelfTestPiece",
    "SelfTestTokens",
    "answer_self_test",
    "marker_id",
    "self_test_body",
]

SELF_TEST_MAX_AGE_SECONDS = 300
_SALT = "vlmhooks.self-test"
# Standard Webhooks ids are the sender's; this prefix holds a '.', which no sender's id may.
_MARKER_PREFIX = "vlmhooks.self-test:"
SelfTestPiece = Literal["token", "vlmrun_signature", "standard_webhooks", "payload"]


class SelfTestTokens:
    """Mint and verify self-test tokens: a nonce under the callback keys and a salt of its own."""

    def __init__(
        self,
        secret_keys: Sequence[str],
        *,
        max_age_seconds: int = SELF_TEST_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._serializer = clocked_serializer(secret_keys, salt=_SALT, clock=clock)
        self._max_age = max_age_seconds

    def mint(self, nonce: str) -> str:
        return self._serializer.dumps({"n": nonce})

    def verify(self, token: str) -> str | None:
        """The nonce, or None when `token` is not a valid, fresh self-test token."""
        try:
            payload = self._serializer.loads(token, max_age=self._max_age)
        except BadData:
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("n"), str):
            return None
        nonce: str = payload["n"]
        return nonce


@functools.lru_cache(maxsize=4)
def _tokens_for(keys: tuple[str, ...], clock: Callable[[], float]) -> SelfTestTokens:
    return SelfTestTokens(keys, clock=clock)


def marker_id(nonce: str) -> str:
    return _MARKER_PREFIX + nonce


def self_test_body(nonce: str, created_at: str) -> bytes:
    """A contract-valid prediction that says what it is, should it ever be looked at."""
    return orjson.dumps(
        {
            "id": f"vlmhooks-self-test-{nonce}",
            "created_at": created_at,
            "completed_at": created_at,
            "status": "completed",
            "response": {"self_test": True},
        }
    )


async def answer_self_test(request: Request, state: ReceiverState) -> Response | None:
    """The answer to a self-test callback, or None when the token is not a self-test token."""
    keys = tuple(key.get_secret_value() for key in state.settings.secret_keys)
    nonce = _tokens_for(keys, state.clock).verify(request.path_params["token"])
    if nonce is None:
        return None
    verified: list[Any] = ["token"]
    piece: SelfTestPiece = "payload"
    try:
        limit = state.settings.max_body_bytes
        declared_length(request.headers.get("content-length"), limit=limit)
        body = await read_body(request.receive, limit=limit)
        headers = request.headers
        policy = state.signature_policy
        # One scheme at a time, so the checker learns which secret does not match.
        if policy.vlmrun is not None:
            piece = "vlmrun_signature"
            only_vlmrun = SignaturePolicy(vlmrun=policy.vlmrun)
            verify_provider_signatures(body, headers, only_vlmrun, now=state.clock())
            verified.append(piece)
        if policy.standard is not None:
            piece = "standard_webhooks"
            only_standard = SignaturePolicy(standard=policy.standard)
            verify_provider_signatures(body, headers, only_standard, now=state.clock())
            verified.append(piece)
        piece = "payload"
        require_json_content_type(headers.get("content-type"))
        validate_prediction(decode_json(body), raw=body)
    except ProblemError as exc:
        return problem_response(
            exc.status, exc.title, exc.detail, slug=exc.type_slug, piece=piece, **exc.extra
        )
    same_database = await call_within(state.settings.db_timeout, _marker_seen, state.engine, nonce)
    ack: SelfTestAck = {
        "self_test": True,
        "nonce": nonce,
        "verified": verified,
        "same_database": same_database,
    }
    return Response(orjson.dumps(ack), media_type="application/json")


def _marker_seen(engine: Engine, nonce: str) -> bool:
    query = sa.select(WEBHOOK_MESSAGE.c.id).where(WEBHOOK_MESSAGE.c.id == marker_id(nonce))
    try:
        with engine.connect() as connection:
            return connection.execute(query).first() is not None
    except sa.exc.SQLAlchemyError:
        return False

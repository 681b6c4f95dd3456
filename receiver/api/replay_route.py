"""`POST /v1/deliveries/replay`: the API form of `vlm-receiver deliveries replay`, through the
group committer like every other write of this process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.engine import Connection
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from receiver.errors import ReplayDisabled
from receiver.http.auth import RequireBearer
from receiver.http.responses import json_response
from receiver.http.routing import Answer, DocumentedRoute, Operation
from receiver.http.shapes import ReplayReport, ReplayRequest, ReplayResult
from receiver.ingest.body import read_body
from receiver.ingest.replay import (
    DEFAULT_REPLAY_LIMIT,
    ReplaySelection,
    replay_report,
    replay_selected,
)
from receiver.state import ReceiverState, receiver_state
from schemas.contract import as_utc
from vlmhooks.errors import ContractViolation, PayloadError
from vlmhooks.ingest.prediction import invalid_fields

__all__ = ["REPLAY_PATH", "replay_deliveries", "replay_routes", "require_replay_keys", "run_replay"]

REPLAY_PATH = "/v1/deliveries/replay"
# A selection is a handful of fields; anything larger is a mistake, not a request.
MAX_REQUEST_BYTES = 16 * 1024
_REQUEST = TypeAdapter(ReplayRequest)


class _DryRunDone(Exception):
    """Raised inside the writer's transaction so that it rolls back a dry run's work."""

    def __init__(self, results: list[ReplayResult]) -> None:
        super().__init__("dry run")
        self.results = results


@dataclass(frozen=True)
class _Parsed:
    selection: ReplaySelection
    dry_run: bool


def require_replay_keys(state: ReceiverState) -> None:
    """Anonymous reads may be open; a write never is (`ReplayDisabled` otherwise)."""
    if not state.api_keys:
        raise ReplayDisabled("replay changes stored data: set VLMHOOKS_API_KEYS and send a key")


async def run_replay(
    state: ReceiverState, selection: ReplaySelection, *, dry_run: bool
) -> ReplayReport:
    """Replay one page of `selection` through the group committer, like every other write
    of this process; a dry run is the same work, rolled back by raising inside it."""
    now = datetime.fromtimestamp(state.clock(), UTC)
    policy = state.signature_policy

    def op(connection: Connection) -> list[ReplayResult]:
        results = replay_selected(connection, selection, policy, now=now)
        if dry_run:
            raise _DryRunDone(results)
        return results

    try:
        results = await state.writer.run(op, alone=True)
    except _DryRunDone as done:
        results = done.results
    more = len(results) == selection.limit
    return replay_report(results, dry_run=dry_run, more=more)


async def replay_deliveries(request: Request) -> Response:
    state = receiver_state(request)
    require_replay_keys(state)
    body = await read_body(request.receive, limit=MAX_REQUEST_BYTES)
    parsed = _parse(body)
    return json_response(await run_replay(state, parsed.selection, dry_run=parsed.dry_run))


def _parse(body: bytes) -> _Parsed:
    try:
        payload = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"the body is not valid JSON: {exc}") from exc
    try:
        request = _REQUEST.validate_python(payload, strict=False)
    except ValidationError as exc:
        raise invalid_fields(exc) from exc
    limit = request.get("limit", DEFAULT_REPLAY_LIMIT)
    for name in ("prediction_id", "submission_id"):
        value = request.get(name)
        if isinstance(value, str) and "\x00" in value:
            # PostgreSQL text cannot hold NUL, so no stored value could match it.
            raise ContractViolation(
                f"invalid fields: {name} (NUL)",
                errors=[{"field": name, "message": "must not contain NUL characters"}],
            )
    selection = ReplaySelection(
        prediction_id=request.get("prediction_id"),
        submission_id=request.get("submission_id"),
        verdicts=tuple(request.get("verdict", ())),
        received_after=_instant(request, "received_after"),
        received_before=_instant(request, "received_before"),
        after_id=request.get("after_id"),
        limit=limit,
    )
    return _Parsed(selection, request.get("dry_run", False))


def _instant(request: ReplayRequest, name: str) -> datetime | None:
    raw = request.get(name)
    if raw is None:
        return None
    assert isinstance(raw, str)
    try:
        return as_utc(datetime.fromisoformat(raw))
    except (ValueError, OverflowError):  # year 1 with an offset leaves datetime's range in UTC
        raise ContractViolation(
            f"invalid fields: {name} (ISO 8601)",
            errors=[{"field": name, "message": "expected an ISO 8601 date-time"}],
        ) from None


def replay_routes() -> list[BaseRoute]:
    return [
        DocumentedRoute(
            REPLAY_PATH,
            replay_deliveries,
            middleware=[Middleware(RequireBearer)],
            post=Operation(
                "replayDeliveries",
                "Re-ingest stored deliveries (idempotent; `dry_run` changes nothing)",
                description="Runs the callback's checks again over each selected delivery's "
                "stored raw body, oldest first: provider signatures as of the time it was "
                "received (with today's secrets), media type, JSON, contract, binding, then the "
                "forward-only write; an unchanged prediction's json_schema verdict is re-checked. "
                "A body cut at the audit cap, or refused at the signature check, is never "
                "replayed. Needs a key even where reads are anonymous.",
                body=ReplayRequest,
                responses={
                    200: Answer("What each delivery did (or would do).", ReplayReport),
                    400: "The body is not JSON.",
                    403: "No API keys are configured: replay is never anonymous.",
                    413: f"The selection is over {MAX_REQUEST_BYTES // 1024} KiB.",
                    422: "A selector is invalid; `errors` lists fields.",
                },
            ),
        )
    ]

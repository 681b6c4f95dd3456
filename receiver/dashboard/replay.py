"""`POST /dashboard/predictions/{prediction_id}/replay`: the detail page's replay button.

The same replay as `POST /v1/deliveries/replay` (`run_replay`, through the group committer),
narrowed to one prediction's deliveries, for a browser that holds a session cookie rather
than a key. The page asks for a dry run first and replays only when the operator confirms.
"""

from __future__ import annotations

import orjson
from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from starlette.requests import Request
from starlette.responses import Response
from typing_extensions import TypedDict

from receiver.api.replay_route import require_replay_keys, run_replay
from receiver.dashboard.origin import require_same_origin
from receiver.http.responses import json_response
from receiver.ingest.body import declared_length, read_body
from receiver.ingest.replay import MAX_REPLAY_LIMIT, ReplaySelection
from receiver.ingest.verify import require_json_content_type
from receiver.state import receiver_state
from vlmhooks.errors import NotFound, PayloadError
from vlmhooks.ingest.prediction import invalid_fields

__all__ = ["MAX_REQUEST_BYTES", "DashboardReplayRequest", "replay_prediction"]

# `{"dry_run": false}` and some whitespace; anything larger is not the page's request.
MAX_REQUEST_BYTES = 1024


@with_config(ConfigDict(extra="forbid", use_attribute_docstrings=True))
class DashboardReplayRequest(TypedDict):
    """What the replay button sends. No default: a real replay is asked for by name."""

    dry_run: bool
    """Report what would change and change nothing."""


_REQUEST = TypeAdapter(DashboardReplayRequest)


def _parse(body: bytes) -> DashboardReplayRequest:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"the body is not valid JSON: {exc}") from exc
    try:
        return _REQUEST.validate_python(payload, strict=True)
    except ValidationError as exc:
        raise invalid_fields(exc) from exc


async def replay_prediction(request: Request) -> Response:
    """Endpoint; the route's middleware has checked the key or session already."""
    state = receiver_state(request)
    # The session cookie rides along with any request the browser makes to /dashboard, so a
    # write must also prove it comes from our own page (the sign-in forms' check).
    require_same_origin(request, state)
    require_replay_keys(state)
    # JSON only: another site's plain HTML form cannot send it without a CORS preflight.
    require_json_content_type(request.headers.get("content-type"))
    declared_length(request.headers.get("content-length"), limit=MAX_REQUEST_BYTES)
    parsed = _parse(await read_body(request.receive, limit=MAX_REQUEST_BYTES))
    prediction_id: str = request.path_params["prediction_id"]
    if "\x00" in prediction_id:  # PostgreSQL text cannot hold NUL: nothing stored names it
        raise NotFound(f"no stored delivery names prediction {prediction_id!r}")
    # One prediction has a handful of deliveries; the largest page covers any real history,
    # and the report's `next_after_id` says so should one ever hold more.
    selection = ReplaySelection(prediction_id=prediction_id, limit=MAX_REPLAY_LIMIT)
    report = await run_replay(state, selection, dry_run=parsed["dry_run"])
    if not report["results"]:
        raise NotFound(
            f"no stored delivery names prediction {prediction_id!r}", prediction_id=prediction_id
        )
    response = json_response(report)
    response.headers["Cache-Control"] = "no-store"
    return response

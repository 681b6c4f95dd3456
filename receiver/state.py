"""What the lifespan builds and every request handler reads: `request.state.receiver`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from starlette.requests import Request

from receiver.ingest.read_through import ReadThrough
from receiver.ingest.refusals import RefusalLog
from receiver.ingest.verify import SignaturePolicy
from receiver.live.events import EventHub
from receiver.live.fanout import FanOut
from receiver.metrics import ReceiverMetrics
from receiver.writer.group_commit import GroupCommitter
from vlmhooks.settings import Settings
from vlmhooks.trust.tokens import CallbackTokens

if TYPE_CHECKING:
    import httpx


# The lifespan state key under which the app leaves a callable for the start of shutdown
# (called by receiver/server/protocol.py; kept here so the app never imports uvicorn).
SHUTDOWN_HOOK = "vlmhooks.on_server_shutdown"


@dataclass
class ReceiverState:
    settings: Settings
    engine: Engine  # reads
    writer: GroupCommitter  # all writes go through the group committer
    tokens: CallbackTokens
    metrics: ReceiverMetrics
    events: EventHub
    http: httpx.AsyncClient | None  # fetch-back from the API; None when it is off
    api_keys: tuple[str, ...]  # lookup API bearer keys; empty = anonymous reads allowed
    signature_policy: SignaturePolicy  # parsed once by create_app
    clock: Callable[[], float]
    refusals: RefusalLog  # one log line per refused callback, counted by reason
    fanout: FanOut | None = None  # shared reads for SSE and long polls; None when serverless
    serverless: bool = False  # one invocation at a time; nothing outlives it (runtime.py)
    read_through: ReadThrough | None = None  # asks the API for ids not stored; None when off


def receiver_state(request: Request) -> ReceiverState:
    # From the scope's lifespan state directly: `request.state` builds a wrapper object,
    # and every callback asks.
    state = request.scope["state"]["receiver"]
    assert isinstance(state, ReceiverState)
    return state

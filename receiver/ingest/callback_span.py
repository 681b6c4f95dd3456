"""The span of one callback when tracing is on (vlmhooks/tracing.py): its ids, verdict and
HTTP status as attributes, and a link to the span that submitted it, read from the trace
context its submission row stored, however long ago.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.types import Message, Receive, Scope, Send

from receiver.state import ReceiverState
from vlmhooks import tracing
from vlmhooks.errors import ProblemError
from vlmhooks.reads.bounded import call_within
from vlmhooks.store.tables import SUBMISSION

if TYPE_CHECKING:
    from opentelemetry.trace import Link

__all__ = ["CallbackNotes", "traced_callback"]

log = logging.getLogger("vlmhooks.callbacks")


@dataclass(slots=True)
class CallbackNotes:
    """What the request path learnt, for the span: filled as far as the callback got."""

    submission_id: str | None = None
    prediction_id: str | None = None
    verdict: str | None = None

    def note(self, submission_id: str | None, prediction_id: str | None, verdict: str) -> None:
        self.submission_id, self.prediction_id, self.verdict = (
            submission_id,
            prediction_id,
            verdict,
        )


Answer = Callable[[Scope, Receive, Send, CallbackNotes | None], Awaitable[None]]


async def traced_callback(
    scope: Scope, receive: Receive, send: Send, answer: Answer, *, route: str
) -> None:
    """`answer` the callback inside a server span named after `route`."""
    notes = CallbackNotes()
    status = 0

    async def send_noting_status(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    attributes = {"http.request.method": "POST", "http.route": route}
    with tracing.start_span(f"POST {route}", kind="server", attributes=attributes) as span:
        await answer(scope, receive, send_noting_status, notes)
        span.set_attribute("http.response.status_code", status)
        if notes.verdict is not None:
            span.set_attribute("vlmhooks.verdict", notes.verdict)
        if notes.prediction_id is not None:
            span.set_attribute("prediction.id", notes.prediction_id)
        if notes.submission_id is not None:
            span.set_attribute("submission.id", notes.submission_id)
            # After the answer went out: the sender never waits for the link.
            link = await _submission_link(scope, notes.submission_id)
            if link is not None:
                span.add_link(link.context, link.attributes)
        if status >= 500:
            from opentelemetry.trace import StatusCode

            span.set_status(StatusCode.ERROR)


async def _submission_link(scope: Scope, submission_id: str) -> Link | None:
    receiver = scope["state"]["receiver"]
    assert isinstance(receiver, ReceiverState)
    try:
        stored = await call_within(
            receiver.settings.db_timeout, _stored_trace_context, receiver.engine, submission_id
        )
    except ProblemError:
        log.debug("no link for submission %s: the database did not answer", submission_id)
        return None
    return tracing.link_to(stored)


def _stored_trace_context(engine: Engine, submission_id: str) -> dict[str, str] | None:
    query = sa.select(SUBMISSION.c.trace_context).where(SUBMISSION.c.id == submission_id)
    with engine.connect() as connection:
        stored = connection.execute(query).scalar_one_or_none()
    return stored if isinstance(stored, dict) else None

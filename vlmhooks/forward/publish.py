"""What every destination client shares: the message, the verdict of one attempt, and the
`Publisher` protocol the relay drives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

import orjson

from vlmhooks.public import iso_utc
from vlmhooks.store.outbox import Claimed

__all__ = ["Attempt", "Message", "Outcome", "Publisher", "encode_message"]

# delivered: acknowledged; retry: try again later; gone: the destination asked never to
# be called again (HTTP 410).
Outcome = Literal["delivered", "retry", "gone"]


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    error: str | None = None  # credentials already scrubbed
    retry_after: float | None = None  # seconds the destination asked us to wait


DELIVERED = Attempt("delivered")


@dataclass(frozen=True)
class Message:
    """One change, encoded once: the same id and body on every attempt and destination."""

    id: str
    type: str
    body: bytes
    timestamp: datetime


def encode_message(claimed: Claimed) -> Message:
    """The Standard Webhooks payload shape: `{"type", "timestamp", "data"}`, with `data`
    spliced in as the stored JSON text."""
    head = orjson.dumps({"type": claimed.type, "timestamp": iso_utc(claimed.timestamp)})
    body = head[:-1] + b',"data":' + claimed.data_json.encode() + b"}"
    return Message(claimed.message_id, claimed.type, body, claimed.timestamp)


class Publisher(Protocol):
    async def publish(self, message: Message) -> Attempt:
        """One attempt; never raises for a failure of the destination (that is a verdict)."""
        ...

    async def aclose(self) -> None: ...


def error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__

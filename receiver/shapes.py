"""The response shapes the receiver builds itself: pages, the callback ack, problems, probes.

Plain dicts at run time; the OpenAPI document is generated from these types (see
`receiver/openapi_schemas.py`), and the core's shapes live in `vlmhooks.public`/`.shapes`.
"""

from __future__ import annotations

from typing import Literal, NotRequired

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

from schemas.enums import Status
from vlmhooks.public import PredictionBody
from vlmhooks.records import Verdict
from vlmhooks.shapes import Delivery

__all__ = ["CallbackAck", "DeliveryPage", "Health", "PredictionPage", "Problem", "Ready"]

_CLOSED = ConfigDict(extra="forbid", use_attribute_docstrings=True)


@with_config(_CLOSED)
class PredictionPage(TypedDict):
    """One page of predictions, newest first."""

    data: list[PredictionBody]
    next_cursor: str | None
    """Pass as `cursor` for the next page; null on the last page."""


@with_config(_CLOSED)
class DeliveryPage(TypedDict):
    """One page of the delivery audit log, newest first."""

    data: list[Delivery]
    next_cursor: str | None
    """Pass as `cursor` for the next page; null on the last page."""


@with_config(_CLOSED)
class CallbackAck(TypedDict):
    """A callback acknowledged: stored, or recognised as a duplicate or stale delivery."""

    id: str
    status: Status
    duplicate: bool
    """The same body was stored before; nothing changed."""
    verdict: Verdict


@with_config(ConfigDict(extra="allow", use_attribute_docstrings=True))
class Problem(TypedDict):
    """RFC 9457 problem details; a problem may carry more members (e.g. `errors` on a 422)."""

    type: str
    title: str
    status: int
    detail: str
    parameter: NotRequired[str]
    """The query parameter at fault."""


@with_config(_CLOSED)
class Health(TypedDict):
    """The process is up."""

    status: Literal["ok"]


@with_config(_CLOSED)
class Ready(TypedDict):
    """The database answers and its schema is at the migrations' head."""

    status: Literal["ready"]
    revision: str | None

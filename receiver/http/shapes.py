"""The response shapes the receiver builds itself: pages, the callback ack, problems, probes.

Plain dicts at run time; the OpenAPI document is generated from these types (see
`receiver/openapi/document.py`), and the core's shapes live in `vlmhooks.public`/`.shapes`.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, field_validator, with_config
from typing_extensions import TypedDict

from schemas.enums import Status
from vlmhooks.forward.destinations import Kind
from vlmhooks.ingest.storable import MAX_SUBMISSION_ID_CHARS
from vlmhooks.public import UtcTimestamp
from vlmhooks.reads.pagination import MAX_ROW_ID
from vlmhooks.reads.shapes import Delivery
from vlmhooks.store.records import DeliveryVerdict, Verdict

__all__ = [
    "MAX_CALLBACK_URLS",
    "MAX_REPLAY_LIMIT",
    "CallbackAck",
    "CallbackUrl",
    "CallbackUrls",
    "CallbackUrlsRequest",
    "DeadLetter",
    "DeadLetterPage",
    "DeliveryPage",
    "Destination",
    "ForwardingStatus",
    "Health",
    "Index",
    "IndexLinks",
    "PathIds",
    "Problem",
    "Ready",
    "ReplayOutcome",
    "ReplayReport",
    "ReplayRequest",
    "ReplayResult",
    "RetryAnswer",
    "SelfTestAck",
]

_CLOSED = ConfigDict(extra="forbid", use_attribute_docstrings=True)


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
class IndexLinks(TypedDict):
    """Where to go next; paths relative to this receiver."""

    dashboard: str
    openapi: str
    health: str
    ready: str


@with_config(_CLOSED)
class Index(TypedDict):
    """`GET /`: what this service is and its main pages, for a person or a probe."""

    service: Literal["vlmhooks receiver"]
    links: IndexLinks


@with_config(_CLOSED)
class Ready(TypedDict):
    """The database answers and its schema is at the migrations' head."""

    status: Literal["ready"]
    revision: str | None


# Enough for a batch job's worth of submissions in one call; small enough that a response
# stays well under a megabyte and a loop of calls is the way to ask for more.
MAX_CALLBACK_URLS = 1000


class CallbackUrlsRequest(BaseModel):
    """`POST /v1/callback-urls`: how many URLs, optionally bound to your own submission id."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    count: int = Field(1, ge=1, le=MAX_CALLBACK_URLS, strict=True)
    """How many URLs; each gets a fresh submission id unless `submission_id` is given."""
    submission_id: str | None = Field(None, min_length=1, max_length=MAX_SUBMISSION_ID_CHARS)
    """Bind the URL to this id (then `count` must be 1): callbacks carry it back."""

    @field_validator("submission_id")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("must be printable characters")
        return value


@with_config(_CLOSED)
class CallbackUrl(TypedDict):
    """A signed callback URL and the submission id its token carries."""

    url: str
    submission_id: str


@with_config(_CLOSED)
class CallbackUrls(TypedDict):
    """Freshly signed callback URLs; send each as one request's `callback_url`."""

    callback_urls: list[CallbackUrl]
    expires_at: UtcTimestamp
    """The tokens are refused after this (VLMHOOKS_TOKEN_MAX_AGE from now)."""


# Replay works in the receiver's write path: a bounded page per request.
MAX_REPLAY_LIMIT = 1000
ReplayOutcome = Literal["stored", "updated", "duplicate", "stale", "refused"]


@with_config(_CLOSED)
class ReplayRequest(TypedDict, total=False):
    """Which stored deliveries to replay; every member narrows the selection."""

    prediction_id: str
    submission_id: str
    verdict: list[DeliveryVerdict]
    """Only deliveries that got one of these verdicts when received (e.g. `["rejected"]`)."""
    received_after: str
    """received_at >= this (ISO 8601; UTC if no offset)."""
    received_before: str
    """received_at < this (ISO 8601; UTC if no offset)."""
    after_id: Annotated[int, Field(ge=0, le=MAX_ROW_ID)]
    """Only deliveries with a larger id: pass the previous answer's `next_after_id`."""
    limit: Annotated[int, Field(ge=1, le=MAX_REPLAY_LIMIT)]
    """At most this many deliveries (default 100)."""
    dry_run: bool
    """Report what would change and change nothing."""


@with_config(_CLOSED)
class ReplayResult(TypedDict):
    """What replaying one stored delivery did (or, in a dry run, would do)."""

    delivery_id: int
    prediction_id: str | None
    submission_id: str | None
    original_verdict: DeliveryVerdict
    outcome: ReplayOutcome
    status: str | None
    """The prediction's status after the replay; null when refused."""
    reason: str | None
    """Why it was refused (or why an unchanged prediction was updated)."""


@with_config(_CLOSED)
class ReplayReport(TypedDict):
    """A replay's results, oldest delivery first."""

    dry_run: bool
    results: list[ReplayResult]
    counts: dict[str, int]
    """Results by outcome."""
    next_after_id: int | None
    """More deliveries match: pass as `after_id` to continue; null when done."""


@with_config(_CLOSED)
class SelfTestAck(TypedDict):
    """A `vlm-receiver check` callback, fully verified and answered without storing anything."""

    self_test: Literal[True]
    nonce: str
    verified: list[Literal["token", "vlmrun_signature", "standard_webhooks"]]
    """The checks this receiver ran; a secret the checker holds must appear here."""
    same_database: bool
    """This receiver sees the checker's marker row: both use the same database."""


_NON_EMPTY = Annotated[str, Field(min_length=1)]


@with_config(ConfigDict(use_attribute_docstrings=True))
class PathIds(TypedDict):
    """The ids routes take in their path; each route documents the ones its path names."""

    prediction_id: _NON_EMPTY
    """The API's prediction id."""
    submission_id: _NON_EMPTY
    """Our submission id (carried in the token)."""
    destination_id: _NON_EMPTY
    """A destination's `id` from `GET /v1/forwarding`."""
    delivery_id: Annotated[int, Field(ge=1, le=MAX_ROW_ID)]
    """The delivery's id."""
    token: _NON_EMPTY
    """The signed token minted into the callback_url."""


@with_config(_CLOSED)
class DestinationFilters(TypedDict):
    """Which changes go to a destination; null matches all."""

    events: list[str] | None
    domain: str | None


@with_config(_CLOSED)
class Destination(TypedDict):
    """A forwarding destination (credentials masked) and its backlog."""

    id: str
    kind: Kind
    target: str
    """The URL, every credential masked."""
    filters: DestinationFilters
    configured: bool
    """In the latest configuration."""
    enabled: bool
    """False after an HTTP 410."""
    disabled_at: UtcTimestamp | None
    disabled_reason: str | None
    backlog: Annotated[int, Field(ge=0)]
    oldest_pending_age_seconds: float | None
    dead_letters: Annotated[int, Field(ge=0)]
    last_error: str | None
    last_error_at: UtcTimestamp | None
    last_delivered_at: UtcTimestamp | None


@with_config(_CLOSED)
class ForwardingStatus(TypedDict):
    """`GET /v1/forwarding`: configured destinations, and unconfigured ones that hold rows."""

    destinations: list[Destination]


@with_config(_CLOSED)
class DeadLetter(TypedDict):
    """A change given up on."""

    id: int
    message_id: str
    prediction_id: str
    type: str
    attempts: int
    created_at: UtcTimestamp | None
    dead_at: UtcTimestamp | None
    last_error: str | None


@with_config(_CLOSED)
class DeadLetterPage(TypedDict):
    """One page of a destination's dead letters, oldest first."""

    data: list[DeadLetter]
    next_cursor: str | None
    """Pass as `cursor` for the next page; null on the last page."""


@with_config(_CLOSED)
class RetryAnswer(TypedDict):
    """Dead letters made pending again; the destination is enabled again."""

    destination: str
    retried: Annotated[int, Field(ge=0)]
    enabled: bool

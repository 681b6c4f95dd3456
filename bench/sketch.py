"""The issue's reference sketch of a receiver, as a bench target: how far the stack goes.

Issue 13 bounded its targets with "a throwaway sketch doing only the token check, the HMAC,
one orjson parse, a minimal contract check and a 3-row group commit (prediction upsert,
delivery, event; `executemany` on the event loop, only `COMMIT` in a thread; SQLite FULL)",
which reached 0.24x bare behind a Starlette route and 0.27x as a plain ASGI endpoint. This
is that sketch, so the figure can be measured again in the same run as the receiver:

    python -m bench.ingest --pin --targets bare,sketch,sketch_asgi,receiver

It writes its own tables (`SCHEMA`, created in the database file it is given if absent):
the same three rows with the same bodies as the receiver's, keyed by integer primary keys,
with the prediction id's uniqueness as their only other index. The bound it gives is the
minimal design's writes, not the receiver's schema: on the receiver's tables, with their
listing, delivery-log and event indexes, it wrote as much as the receiver (bench/README.md,
"Write amplification with realistic ids"), and "bytes written at most 2x the sketch's"
compared the schema with itself. `bench.ingest` gives it an unmigrated file; a database
the receiver's migrations made already (`bench.ingest_cpu`'s) keeps the receiver's tables.

It keeps none of the receiver's other guarantees (conflicts, webhook ids, the audit log's
refusals, schema checks, forwarding, events with the public body, storability) and answers
malformed input with a bare 4xx: a lower bound on CPU per callback, not a receiver.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bench.payloads import BENCH_SECRET_KEY, BENCH_WEBHOOK_SECRET
from schemas.enums import STATUS_RANK
from vlmhooks.errors import VlmhooksError
from vlmhooks.trust.signatures import parse_vlmrun_secrets
from vlmhooks.trust.tokens import CallbackTokens

__all__ = ["SCHEMA", "SketchReceiver", "sketch_app", "sketch_asgi_app"]


# The sketch's own tables: the columns the receiver's rows carry (schemas/tables.py), the
# same three bodies (the prediction's response, the delivery's body, the event's data), and
# none of the receiver's secondary indexes (listing indexes on prediction, the delivery log's,
# the events'). The upsert needs the prediction id unique, so that one index stays.
#
# An integer rowid key plus a UNIQUE id, rather than `id TEXT PRIMARY KEY ... WITHOUT ROWID`:
# with random UUID ids, 30,000 callbacks from an empty file, in process, 32 at a time, wrote
# 19.0 KiB per callback this way and 35.4 KiB clustered by id (each large row lands on a random
# leaf and splits it; here the rows append and only the small id index is written at random).
# A plain `id TEXT PRIMARY KEY` on a rowid table is this same layout (SQLite backs it with a
# unique index beside the rowid table).
SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS prediction (
    row_key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, submission_id TEXT, domain TEXT,
    status TEXT NOT NULL, status_rank INTEGER NOT NULL, response BLOB, usage BLOB, extra BLOB,
    created_at TEXT NOT NULL, completed_at TEXT, received_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, delivery_count INTEGER NOT NULL, source TEXT NOT NULL,
    body_sha256 TEXT NOT NULL)
""",
    """
CREATE TABLE IF NOT EXISTS delivery (
    id INTEGER PRIMARY KEY, prediction_id TEXT, submission_id TEXT, received_at TEXT NOT NULL,
    verdict TEXT NOT NULL, http_status INTEGER NOT NULL, source TEXT NOT NULL,
    body_sha256 TEXT NOT NULL, headers BLOB, body BLOB, body_truncated INTEGER NOT NULL)
""",
    """
CREATE TABLE IF NOT EXISTS prediction_event (
    seq INTEGER PRIMARY KEY, prediction_key INTEGER, prediction_id TEXT NOT NULL,
    type TEXT NOT NULL, data BLOB NOT NULL, created_at TEXT NOT NULL)
""",
)

# The receiver's own forward-only rule, in one statement.
_UPSERT = """
INSERT INTO prediction (id, submission_id, domain, status, status_rank, response, usage,
    extra, created_at, completed_at, received_at, updated_at, delivery_count, source,
    body_sha256)
VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, 1, 'callback', ?)
ON CONFLICT (id) DO UPDATE SET status = excluded.status, status_rank = excluded.status_rank,
    response = excluded.response, usage = excluded.usage, updated_at = excluded.updated_at,
    delivery_count = prediction.delivery_count + 1, body_sha256 = excluded.body_sha256
WHERE excluded.status_rank > prediction.status_rank
    OR (excluded.status_rank = prediction.status_rank
        AND excluded.body_sha256 != prediction.body_sha256)
"""
_DELIVERY = """
INSERT INTO delivery (prediction_id, submission_id, received_at, verdict, http_status,
    source, body_sha256, headers, body, body_truncated)
VALUES (?, ?, ?, 'stored', 200, 'callback', ?, ?, ?, 0)
"""
# Keyed by the prediction's row_key, as the receiver keys it (schemas/tables.py).
_EVENT = """
INSERT INTO prediction_event (prediction_key, prediction_id, type, data, created_at)
VALUES ((SELECT row_key FROM prediction WHERE id = ?1), ?1, ?2, ?3, ?4)
"""
_ACK_HEADERS = [(b"content-type", b"application/json")]


class _Row(NamedTuple):
    """One callback's values, and the parameters of its three statements."""

    id: str
    submission_id: str
    domain: Any
    status: str
    status_rank: int
    response: bytes
    usage: bytes | None
    created_at: Any
    completed_at: Any
    received_at: str
    body_sha256: str
    body: bytes

    def upsert_params(self) -> tuple[Any, ...]:
        r = self
        return (
            *(r.id, r.submission_id, r.domain, r.status, r.status_rank, r.response, r.usage),
            *(r.created_at, r.completed_at, r.received_at, r.received_at, r.body_sha256),
        )

    def delivery_params(self) -> tuple[Any, ...]:
        return (self.id, self.submission_id, self.received_at, self.body_sha256, b"{}", self.body)

    def event_params(self) -> tuple[Any, ...]:
        return (self.id, f"prediction.{self.status}", self.body, self.received_at)


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class SketchReceiver:
    """Verify, parse, check, and store through a group commit whose COMMIT alone leaves
    the event loop."""

    def __init__(self, database_path: str) -> None:
        self.tokens = CallbackTokens([BENCH_SECRET_KEY], max_age_seconds=30 * 24 * 3600)
        self.signatures = parse_vlmrun_secrets([BENCH_WEBHOOK_SECRET])
        # One connection, used by one thread at a time: the loop runs the statements,
        # then waits while a helper thread runs the COMMIT.
        self.db = sqlite3.connect(database_path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        for statement in SCHEMA:
            self.db.execute(statement)
        self.pending: list[tuple[_Row, asyncio.Future[None]]] = []
        self.wake: asyncio.Event | None = None
        self.committer: asyncio.Task[None] | None = None  # referenced, so never collected

    async def receive(self, token: str, body: bytes, signature: str | None) -> bytes:
        try:
            submission_id = self.tokens.verify(token)
            self.signatures.verify(body, signature)
            payload = orjson.loads(body)
        except (VlmhooksError, orjson.JSONDecodeError) as exc:
            raise _Refused(getattr(exc, "status", 400)) from exc
        if not isinstance(payload, dict):
            raise _Refused(422)
        prediction_id, status = payload.get("id"), payload.get("status")
        if not isinstance(prediction_id, str) or not prediction_id or status not in STATUS_RANK:
            raise _Refused(422)
        now = datetime.now(UTC).isoformat()
        digest = hashlib.sha256(body).hexdigest()
        response = orjson.dumps(payload.get("response"))
        usage = payload.get("usage")
        row = _Row(
            prediction_id,
            submission_id,
            payload.get("domain"),
            status,
            STATUS_RANK[status],
            response,
            None if usage is None else orjson.dumps(usage),
            payload.get("created_at") or now,
            payload.get("completed_at"),
            now,
            digest,
            body,
        )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((row, done))
        if self.wake is None:
            self.wake = asyncio.Event()
            self.committer = asyncio.get_running_loop().create_task(self._commit_forever(self.wake))
        self.wake.set()
        await done
        return b'{"id":' + orjson.dumps(prediction_id) + b',"status":"' + status.encode() + b'"}'

    async def _commit_forever(self, wake: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await wake.wait()
            wake.clear()
            batch, self.pending = self.pending, []
            if not batch:
                continue
            rows = [row for row, _ in batch]
            try:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany(_UPSERT, [r.upsert_params() for r in rows])
                self.db.executemany(_DELIVERY, [r.delivery_params() for r in rows])
                self.db.executemany(_EVENT, [r.event_params() for r in rows])
                await loop.run_in_executor(None, self.db.commit)
            except sqlite3.Error as exc:
                if self.db.in_transaction:
                    self.db.rollback()
                for _, done in batch:
                    if not done.done():  # a cancelled request's future is done already
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)


def _database_path() -> str:
    return os.environ["DATABASE_URL"].removeprefix("sqlite:///")


def sketch_app() -> Starlette:
    """The sketch behind a Starlette route."""
    sketch = SketchReceiver(_database_path())

    async def callback(request: Request) -> Response:
        try:
            ack = await sketch.receive(
                request.path_params["token"],
                await request.body(),
                request.headers.get("x-vlmrun-signature"),
            )
        except _Refused as exc:
            return Response(status_code=exc.status)
        return Response(ack, media_type="application/json")

    return Starlette(routes=[Route("/v1/callbacks/{token}", callback, methods=["POST"])])


def sketch_asgi_app() -> Any:
    """The sketch as a plain ASGI endpoint: no router, no Request, no Response."""
    sketch = SketchReceiver(_database_path())
    prefix = "/v1/callbacks/"

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        signature = None
        for name, value in scope["headers"]:
            if name == b"x-vlmrun-signature":
                signature = value.decode("latin-1")
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        status, ack = 200, b""
        try:
            ack = await sketch.receive(
                scope["path"].removeprefix(prefix), b"".join(chunks), signature
            )
        except _Refused as exc:
            status = exc.status
        headers = [*_ACK_HEADERS, (b"content-length", str(len(ack)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": ack})

    return app

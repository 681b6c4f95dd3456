"""Hostile but well-formed callbacks, on SQLite and PostgreSQL: stored or refused, never a 500.

Each payload is valid JSON, correctly signed and sent with a valid token, yet holds a value
at the edge of what the contract, the parser or the database accepts. The receiver must
either store it (2xx, one more row) or refuse it (4xx problem, no row), and in both cases
log the delivery for audit. Most cases are 500s the fuzzers found (`test_fuzz_callbacks.py`):
ids and domains wider than their PostgreSQL columns, U+0000 (which PostgreSQL text and jsonb
cannot hold), timestamps whose UTC conversion overflows, and nesting past the encoder's
depth limit; they stay here as fast, deterministic regressions on both databases.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from receiver.app import create_app
from schemas.enums import Status
from tests.reliability.callbacks import (
    DATABASES,
    LOOKUP_KEY,
    SECRET_KEY,
    WEBHOOK_SECRET,
    prediction_body,
    scratch_database,
)
from tests.servers import serve
from vlmhooks.settings import Settings
from vlmhooks.store.db import make_engine
from vlmhooks.store.tables import DELIVERY, PREDICTION
from vlmhooks.trust.signatures import VLMRUN_SIGNATURE_HEADER, sign_vlmrun
from vlmhooks.trust.tokens import CallbackTokens


@dataclass(frozen=True)
class Hostile:
    name: str
    body: bytes


def payload(**fields: Any) -> bytes:
    body = prediction_body(f"pred_hostile_{uuid.uuid4().hex}", Status.COMPLETED)
    body.update(fields)
    return json.dumps(body).encode()


def nested_response(depth: int) -> bytes:
    head = payload(response=None).removesuffix(b"}")
    return head + b', "nested": ' + b"[" * depth + b"]" * depth + b"}"


HOSTILE_PAYLOADS = [
    Hostile("id of 128 characters", payload(id="i" * 128)),
    Hostile("id of 129 characters", payload(id="i" * 129)),
    Hostile("id of 100 emoji", payload(id="\U0001f600" * 100)),
    Hostile("domain of 65 characters", payload(domain="d" * 65)),
    Hostile("domain not a string", payload(domain=5)),
    Hostile("NUL in the id", payload(id="pred\x00nul")),
    Hostile("NUL in the domain", payload(domain="image\x00caption")),
    Hostile("NUL in a response string", payload(response={"a": "b\x00c"})),
    Hostile("NUL in a response key", payload(response={"a\x00": 1})),
    Hostile("NUL in an unknown field", payload(note="\x00")),
    Hostile("NUL in usage.element_type", payload(usage={"element_type": "\x00"})),
    Hostile("NUL in the id of a refused payload", payload(id="pred\x00refused", status="bogus")),
    Hostile("created_at year 1, UTC", payload(created_at="0001-01-01T00:00:00Z")),
    Hostile("created_at year 9999, UTC", payload(created_at="9999-12-31T23:59:59Z")),
    Hostile("created_at year 1, +01:00", payload(created_at="0001-01-01T00:30:00+01:00")),
    Hostile("completed_at year 9999, -14:00", payload(completed_at="9999-12-31T23:59:59-14:00")),
    Hostile("created_at without a zone", payload(created_at="2026-11-24T12:00:00")),
    Hostile("created_at a date only", payload(created_at="2026-11-24")),
    Hostile("created_at 1e20 seconds", payload(created_at=1e20)),
    Hostile("credits_used 2**63", payload(usage={"credits_used": 2**63})),
    Hostile("credits_used 2**64 + 1", payload(usage={"credits_used": 2**64 + 1})),
    Hostile("response 1e308", payload(response=1e308)),
    Hostile("a field nested 200 deep", nested_response(200)),
    Hostile("a field nested 300 deep", nested_response(300)),
    Hostile("a field nested 1,000 deep", nested_response(1000)),
    Hostile("a field nested 5,000 deep", nested_response(5000)),
    Hostile("duplicate keys", b'{"id": "pred_hostile_dup_a", "id": "pred_hostile_dup_b"}'),
    Hostile("UTF-8 byte order mark", b"\xef\xbb\xbf" + payload()),
    Hostile("escaped surrogate pair", payload(response="\U0001f600")),
    Hostile("lone escaped surrogate", payload().replace(b'"domain"', b'"x": "\\ud800", "domain"')),
]


@dataclass
class HostileReceiver:
    client: httpx.Client
    engine: Engine
    tokens: CallbackTokens

    def counts(self) -> tuple[int, int]:
        with self.engine.connect() as connection:
            predictions = connection.execute(sa.select(sa.func.count()).select_from(PREDICTION))
            deliveries = connection.execute(sa.select(sa.func.count()).select_from(DELIVERY))
            return predictions.scalar_one(), deliveries.scalar_one()


@pytest.fixture(scope="module", params=DATABASES)
def hostile(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostileReceiver]:
    """One receiver per database for the whole table of payloads."""
    with scratch_database(request.param, request, tmp_path_factory.mktemp("hostile")) as url:
        settings = Settings(
            database_url=url,
            secret_keys=(SECRET_KEY,),
            vlmrun_webhook_secrets=(WEBHOOK_SECRET,),
            api_keys=(LOOKUP_KEY,),
        )
        engine = make_engine(url)
        try:
            with (
                serve(create_app(settings)) as server,
                httpx.Client(base_url=server.url, timeout=30) as client,
            ):
                yield HostileReceiver(client, engine, CallbackTokens([SECRET_KEY]))
        finally:
            engine.dispose()


@pytest.mark.parametrize("case", HOSTILE_PAYLOADS, ids=lambda case: case.name)
def test_hostile_payload_is_stored_or_refused(hostile: HostileReceiver, case: Hostile) -> None:
    token = hostile.tokens.mint(f"sub_hostile_{uuid.uuid4().hex}")
    headers = {
        "content-type": "application/json",
        VLMRUN_SIGNATURE_HEADER: sign_vlmrun(WEBHOOK_SECRET, case.body),
    }
    predictions, deliveries = hostile.counts()
    started = time.monotonic()
    response = hostile.client.post(f"/v1/callbacks/{token}", content=case.body, headers=headers)
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:300]}"
    after_predictions, after_deliveries = hostile.counts()
    if 200 <= status < 300:
        assert response.headers["content-type"].startswith("application/json")
        assert after_predictions == predictions + 1, "acknowledged but not stored"
    else:
        assert 400 <= status < 500, status
        assert response.headers["content-type"].startswith("application/problem+json")
        assert after_predictions == predictions, "refused but stored"
    assert after_deliveries == deliveries + 1, "the delivery was not logged for audit"
    assert time.monotonic() - started < 10

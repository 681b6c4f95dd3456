"""Secrets stay out of logs, and every refused callback leaves one structured line.

Over real HTTP with uvicorn's access log on (`log_config=None` routes it to caplog), on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from receiver.ingest.refusals import REFUSALS_LOGGER, UNAUTHENTICATED_BURST
from tests.receiver.callback_harness import (
    LOOKUP_KEY,
    encode,
    mint,
    prediction_body,
    receiver_settings,
    tampered,
)
from tests.reliability.rawsocket import hardened_receiver
from vlmhooks.store.db import make_engine
from vlmhooks.store.tables import DELIVERY
from vlmhooks.trust.signatures import VLMRUN_SIGNATURE_HEADER, sign_vlmrun

WEBHOOK_SECRET = "quiet-logs-webhook-secret"
JSON = {"content-type": "application/json"}


@pytest.fixture(autouse=True)
def access_log_captured(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """uvicorn's own logging config (applied by other tests' servers) stops its access logger
    from propagating; hand its records to caplog directly for these tests."""
    access = logging.getLogger("uvicorn.access")
    propagate = access.propagate
    access.propagate = False
    access.addHandler(caplog.handler)
    try:
        yield
    finally:
        access.removeHandler(caplog.handler)
        access.propagate = propagate


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every server-side message and traceback as a handler would format it (the test's own
    HTTP client logs the URLs it calls, secrets included: that is not the server's log)."""
    formatter = logging.Formatter()
    return "\n".join(
        formatter.format(record) for record in caplog.records if record.name != "httpx"
    )


def refusals(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        record.__dict__["refusal"] for record in caplog.records if record.name == REFUSALS_LOGGER
    ]


def delivery_count(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(sa.select(sa.func.count()).select_from(DELIVERY)).scalar()
            )
    finally:
        engine.dispose()


def test_access_log_redacts_callback_tokens_and_access_tokens(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    token = mint("sub_quiet")
    with (
        hardened_receiver(receiver_settings(database_url), log_level="info") as server,
        httpx.Client() as http,
    ):
        assert http.post(f"{server.url}/v1/callbacks/{token}", content=b"{}").status_code == 415
        for query in (f"access_token={LOOKUP_KEY}", f"limit=5&access%5Ftoken={LOOKUP_KEY}"):
            assert http.get(f"{server.url}/v1/predictions?{query}").status_code == 200
    logged = everything_logged(caplog)
    access = [record for record in caplog.records if record.name == "uvicorn.access"]
    assert len(access) == 3
    assert token not in logged
    assert token.partition(".")[0] not in logged  # not even the payload part
    assert LOOKUP_KEY not in logged
    assert "/v1/callbacks/[redacted]" in logged
    assert "access_token=[redacted]" in logged


def test_storage_errors_do_not_log_bodies(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(database_url)
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON prediction "
                "BEGIN SELECT RAISE(ABORT, 'writes refused'); END"
            )
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'writes refused'; END $$"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON prediction "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
    engine.dispose()
    marker = "very-private-response-text"
    body = encode(prediction_body(response={"secret": marker}))
    caplog.set_level(logging.INFO)
    with hardened_receiver(receiver_settings(database_url), log_level="info") as server:
        answer = httpx.post(f"{server.url}/v1/callbacks/{mint()}", content=body, headers=JSON)
    assert answer.status_code == 503
    logged = everything_logged(caplog)
    assert "writes refused" in logged  # the error is logged...
    assert marker not in logged  # ...without the statement's parameters


@pytest.mark.parametrize(
    ("trusted", "shown"), [("192.0.2.1", "127.0.0.1"), ("127.0.0.1", "9.9.9.9")]
)
def test_x_forwarded_for_is_believed_only_from_configured_proxies(
    sqlite_url: str, caplog: pytest.LogCaptureFixture, trusted: str, shown: str
) -> None:
    caplog.set_level(logging.INFO)
    settings = receiver_settings(sqlite_url, forwarded_allow_ips=trusted)
    with hardened_receiver(settings, log_level="info") as server:
        httpx.get(f"{server.url}/healthz", headers={"x-forwarded-for": "9.9.9.9"})
    (line,) = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert line.startswith(f"{shown}:"), line


def test_every_refused_callback_leaves_one_structured_line(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = receiver_settings(database_url, vlmrun_webhook_secrets=(WEBHOOK_SECRET,))
    token = mint("sub_refused")
    contract_body = encode(prediction_body(prediction_id="pred_claimed", status="bogus"))
    signed = {**JSON, VLMRUN_SIGNATURE_HEADER: sign_vlmrun(WEBHOOK_SECRET, contract_body)}
    with (
        hardened_receiver(settings, log_level="info") as server,
        httpx.Client(base_url=server.url) as http,
    ):
        bad_token = http.post(f"/v1/callbacks/{tampered(token)}", content=contract_body)
        unsigned = http.post(f"/v1/callbacks/{token}", content=contract_body, headers=JSON)
        invalid = http.post(f"/v1/callbacks/{token}", content=contract_body, headers=signed)
        metrics = http.get("/metrics", headers={"authorization": f"Bearer {LOOKUP_KEY}"}).text
    assert [bad_token.status_code, unsigned.status_code, invalid.status_code] == [401, 401, 422]
    lines = refusals(caplog)
    assert [(line["reason"], line["status"]) for line in lines] == [
        ("invalid-token", 401),
        ("invalid-signature", 401),
        ("contract-violation", 422),
    ]
    assert lines[0]["submission_id"] is None and lines[0]["prediction_id"] is None
    assert lines[1]["submission_id"] == "sub_refused"
    assert lines[2]["prediction_id"] == "pred_claimed"
    messages = [r.getMessage() for r in caplog.records if r.name == REFUSALS_LOGGER]
    assert all(json.loads(m.removeprefix("callback refused ")) for m in messages)
    logged = everything_logged(caplog)
    assert token not in logged and tampered(token) not in logged and WEBHOOK_SECRET not in logged
    for reason in ("invalid-token", "invalid-signature", "contract-violation"):
        assert f'vlmhooks_callback_refusals_total{{reason="{reason}"}} 1.0' in metrics
    # The bad-token request wrote nothing; the two authenticated refusals are audited.
    assert delivery_count(database_url) == 2


def test_bad_token_lines_are_rate_limited_but_all_counted(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    attempts = UNAUTHENTICATED_BURST * 3
    with (
        hardened_receiver(receiver_settings(sqlite_url), log_level="info") as server,
        httpx.Client(base_url=server.url) as http,
    ):
        started = time.monotonic()
        for index in range(attempts):
            assert http.post(f"/v1/callbacks/forged-{index}", content=b"{}").status_code == 401
        elapsed = time.monotonic() - started
        metrics = http.get("/metrics", headers={"authorization": f"Bearer {LOOKUP_KEY}"}).text
    lines = refusals(caplog)
    # A burst, then about one a second; whatever the machine's speed, fewer than sent.
    assert UNAUTHENTICATED_BURST <= len(lines) <= UNAUTHENTICATED_BURST + int(elapsed) + 1
    assert len(lines) < attempts
    assert f'vlmhooks_callback_refusals_total{{reason="invalid-token"}} {attempts}.0' in metrics
    assert delivery_count(sqlite_url) == 0

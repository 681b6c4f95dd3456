"""Bounded waits: whatever the database does, a request is answered within VLMHOOKS_DB_TIMEOUT.

PostgreSQL sits behind a link the test cuts like a partition (tests/reliability/partition.py)
while callbacks flow through the real receiver over loopback: every answer comes within the
timeout (a 503 with Retry-After while the link is down), ingest resumes once it is back, and
every callback acknowledged with a 200 is in the database. Reads too: a lookup, a long poll
and /readyz answer 503 within the timeout of the cut, and a lookup of a database that is gone
is a 503, not a 500.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from receiver.app import create_app
from schemas.enums import Status
from tests.conftest import POSTGRES_ADMIN_DSN
from tests.reliability.callbacks import (
    LOOKUP_KEY,
    SECRET_KEY,
    WEBHOOK_SECRET,
    encode,
    prediction_body,
    prediction_rows,
    vlmrun_headers,
)
from tests.reliability.partition import postgres_link
from tests.servers import serve
from vlmhooks.settings import Settings
from vlmhooks.store.db import make_engine
from vlmhooks.trust.tokens import CallbackTokens

DB_TIMEOUT = 2.0
SENDERS = 4
OUTAGE_SECONDS = 3.0
# An answer may leave the server a little after its deadline fires (the loop's turn, the
# response's bytes): the bound checked is the timeout plus this.
ANSWER_SLACK = 0.5


@dataclass(frozen=True)
class Answer:
    prediction_id: str
    status: int
    retry_after: str | None
    sent: float
    seconds: float


def bounded_settings(database_url: str) -> Settings:
    """A receiver whose waits on the database are bounded by DB_TIMEOUT; no relay."""
    return Settings(
        database_url=database_url,
        secret_keys=(SECRET_KEY,),
        vlmrun_webhook_secrets=(WEBHOOK_SECRET,),
        api_keys=(LOOKUP_KEY,),
        db_timeout=DB_TIMEOUT,
        forward_in_serve=False,
    )


def send_until(url: str, stop: threading.Event, sender: int, answers: list[Answer]) -> None:
    tokens = CallbackTokens([SECRET_KEY])
    with httpx.Client(base_url=url, timeout=30.0) as client:
        index = 0
        while not stop.is_set():
            prediction_id = f"pred_partition_{sender}_{index}"
            index += 1
            body = encode(prediction_body(prediction_id, Status.COMPLETED))
            path = f"/v1/callbacks/{tokens.mint(f'sub_{prediction_id}')}"
            sent = time.monotonic()
            response = client.post(path, content=body, headers=vlmrun_headers(body))
            answers.append(
                Answer(
                    prediction_id,
                    response.status_code,
                    response.headers.get("retry-after"),
                    sent,
                    time.monotonic() - sent,
                )
            )


@pytest.mark.postgres
def test_a_partition_gets_503_within_the_timeout_and_loses_no_acknowledged_callback(
    postgres_url: str,
) -> None:
    direct = make_url(postgres_url)
    with postgres_link() as link:
        across = direct.set(host=link.host, port=link.port).render_as_string(hide_password=False)
        settings = bounded_settings(across)
        answers: list[Answer] = []
        stop = threading.Event()
        with serve(create_app(settings)) as server:
            senders = [
                threading.Thread(target=send_until, args=(server.url, stop, n, answers))
                for n in range(SENDERS)
            ]
            for sender in senders:
                sender.start()
            try:
                time.sleep(0.5)
                cut = time.monotonic()
                link.down()
                time.sleep(OUTAGE_SECONDS)
                link.up()
                healed = time.monotonic()
                time.sleep(DB_TIMEOUT + 2.0)
            finally:
                stop.set()
                for sender in senders:
                    sender.join(timeout=30)

    slowest = max(answer.seconds for answer in answers)
    assert slowest <= DB_TIMEOUT + ANSWER_SLACK, f"an answer took {slowest:.2f} s"
    assert {answer.status for answer in answers} <= {200, 503}
    refused = [answer for answer in answers if answer.status == 503]
    assert refused, "no callback was refused while the link was down"
    assert all(answer.retry_after for answer in refused)
    # Answered while the link was down (past a commit that was already on its way at the cut).
    during = [a for a in answers if cut + ANSWER_SLACK < a.sent + a.seconds < healed]
    assert during and all(a.status == 503 for a in during)
    # Ingest is back within the timeout of the link's return.
    resumed = [a for a in answers if a.status == 200 and a.sent > healed]
    after = [
        (round(a.sent - healed, 2), a.status, round(a.seconds, 2))
        for a in answers
        if a.sent > healed - DB_TIMEOUT
    ]
    assert resumed, after
    assert min(a.sent + a.seconds for a in resumed) < healed + DB_TIMEOUT + 1.0, after
    engine = make_engine(postgres_url)
    try:
        stored = prediction_rows(engine)
    finally:
        engine.dispose()
    acknowledged = {answer.prediction_id for answer in answers if answer.status == 200}
    assert acknowledged <= set(stored)
    print(
        f"\npartition: {len(answers)} callbacks, {len(refused)} refused, "
        f"slowest answer {slowest:.2f} s, first 200 after the link came back "
        f"{min(a.sent + a.seconds for a in resumed) - healed:.2f} s"
    )


def _get(url: str, path: str, answers: dict[str, tuple[int, str | None, str, float]]) -> None:
    headers = {"authorization": f"Bearer {LOOKUP_KEY}"}
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=30.0) as client:
        response = client.get(path, headers=headers)
    answers[path] = (
        response.status_code,
        response.headers.get("retry-after"),
        response.headers.get("content-type", ""),
        time.monotonic() - started,
    )


@pytest.mark.postgres
def test_a_partition_answers_a_lookup_a_long_poll_and_readyz_503_within_the_timeout(
    postgres_url: str,
) -> None:
    direct = make_url(postgres_url)
    tokens = CallbackTokens([SECRET_KEY])
    with postgres_link() as link:
        across = direct.set(host=link.host, port=link.port).render_as_string(hide_password=False)
        settings = bounded_settings(across)
        with serve(create_app(settings)) as server:
            # A prediction still running: the long poll would wait for it, not answer at once.
            body = encode(prediction_body("pred_reads_running", Status.RUNNING))
            stored = httpx.post(
                f"{server.url}/v1/callbacks/{tokens.mint('sub_pred_reads_running')}",
                content=body,
                headers=vlmrun_headers(body),
            )
            assert stored.status_code == 200, stored.text
            paths = [
                "/v1/predictions/pred_reads_running",
                "/v1/predictions/pred_reads_running?wait=20",
                "/readyz",
            ]
            answers: dict[str, tuple[int, str | None, str, float]] = {}
            link.down()
            try:
                readers = [
                    threading.Thread(target=_get, args=(server.url, path, answers))
                    for path in paths
                ]
                for reader in readers:
                    reader.start()
                for reader in readers:
                    reader.join(timeout=30)
            finally:
                link.up()
    assert set(answers) == set(paths), answers
    for path, (status, retry_after, media_type, seconds) in answers.items():
        assert status == 503, (path, answers)
        assert media_type == "application/problem+json", (path, media_type)
        assert seconds <= DB_TIMEOUT + ANSWER_SLACK, (path, seconds)
        if path != "/readyz":
            assert retry_after, (path, answers)


@pytest.mark.postgres
def test_a_lookup_on_a_database_that_is_gone_is_503_not_500(postgres_url: str) -> None:
    settings = bounded_settings(postgres_url)
    name = make_url(postgres_url).database
    headers = {"authorization": f"Bearer {LOOKUP_KEY}"}
    with serve(create_app(settings)) as server:
        assert (
            httpx.get(f"{server.url}/v1/predictions/pred_gone", headers=headers).status_code == 404
        )
        # Every connection cut and no new one possible: what a stopped server looks like.
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        started = time.monotonic()
        lookup = httpx.get(f"{server.url}/v1/predictions/pred_gone", headers=headers)
        listing = httpx.get(f"{server.url}/v1/predictions", headers=headers)
        seconds = time.monotonic() - started
    for response in (lookup, listing):
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"]
        assert response.json()["type"].endswith("/storage-unavailable")
    assert seconds <= 2 * (DB_TIMEOUT + ANSWER_SLACK)


@pytest.mark.postgres
def test_a_lookup_that_the_database_holds_past_the_timeout_is_503_in_time(
    postgres_url: str,
) -> None:
    settings = bounded_settings(postgres_url)
    headers = {"authorization": f"Bearer {LOOKUP_KEY}"}
    with serve(create_app(settings)) as server:
        lookup = f"{server.url}/v1/predictions/pred_held"
        assert httpx.get(lookup, headers=headers).status_code == 404
        # A lock the lookup waits on: the server answers TCP at once, so no socket option
        # notices; only the read's own bound does.
        with psycopg.connect(postgres_url.replace("+psycopg", "")) as holder:
            holder.execute("LOCK TABLE prediction IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            held = httpx.get(lookup, headers=headers, timeout=DB_TIMEOUT + 3.0)
            seconds = time.monotonic() - started
            holder.rollback()
        after = httpx.get(lookup, headers=headers)
    assert held.status_code == 503, held.text
    assert held.headers["retry-after"]
    assert held.json()["detail"] == f"the database did not answer within {DB_TIMEOUT:g} s"
    assert DB_TIMEOUT <= seconds <= DB_TIMEOUT + ANSWER_SLACK
    assert after.status_code == 404


@pytest.mark.postgres
def test_a_replay_whose_commit_the_database_holds_past_the_timeout_is_503_in_time(
    postgres_url: str,
) -> None:
    settings = bounded_settings(postgres_url)
    headers = {"authorization": f"Bearer {LOOKUP_KEY}"}
    with serve(create_app(settings)) as server:
        replay = f"{server.url}/v1/deliveries/replay"
        assert httpx.post(replay, json={}, headers=headers).status_code == 200
        # The replay's write waits on the lock: the writer's commit deadline answers.
        with psycopg.connect(postgres_url.replace("+psycopg", "")) as holder:
            holder.execute("LOCK TABLE delivery IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            held = httpx.post(replay, json={}, headers=headers, timeout=DB_TIMEOUT + 3.0)
            seconds = time.monotonic() - started
            holder.rollback()
        after = httpx.post(replay, json={}, headers=headers)
    assert held.status_code == 503, held.text
    assert held.headers["content-type"] == "application/problem+json"
    assert held.headers["retry-after"]
    assert DB_TIMEOUT <= seconds <= DB_TIMEOUT + ANSWER_SLACK
    assert after.status_code == 200

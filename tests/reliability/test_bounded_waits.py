"""Bounded waits: whatever the database does, a callback is answered within VLMHOOKS_DB_TIMEOUT.

PostgreSQL sits behind a link the test cuts like a partition (tests/reliability/partition.py)
while callbacks flow through the real receiver over loopback: every answer comes within the
timeout (a 503 with Retry-After while the link is down), ingest resumes once it is back, and
every callback acknowledged with a 200 is in the database.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.engine import make_url

from receiver.app import create_app
from schemas.enums import Status
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
        settings = Settings(
            database_url=across,
            secret_keys=(SECRET_KEY,),
            vlmrun_webhook_secrets=(WEBHOOK_SECRET,),
            api_keys=(LOOKUP_KEY,),
            db_timeout=DB_TIMEOUT,
            forward_in_serve=False,
        )
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

"""Duplicate storm: every prediction delivered 3 times, statuses shuffled, 32 connections at once.

Each prediction gets three signed callbacks whose statuses are drawn so that one status
ranks strictly highest (e.g. running, completed, running, or pending, completed, completed);
that one is its true final status. All 3N callbacks go out in one shuffled stream over
`STORM_CONNECTIONS` concurrent keep-alive connections, so copies of one prediction race each
other. Afterwards there are exactly N rows, each at its true final status, and every
response was a 200.

Sizes (see `tests/reliability/sizing.py`): `STORM_PREDICTIONS` (CI 200, full 1,000).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from receiver.app import create_app
from schemas.enums import STATUS_RANK, Status
from tests.reliability.callbacks import (
    LOOKUP_KEY,
    SECRET_KEY,
    WEBHOOK_SECRET,
    add_submissions,
    encode,
    prediction_body,
    prediction_rows,
    vlmrun_headers,
)
from tests.reliability.processes import ReceiverProcess
from tests.reliability.rawhttp import RawConnection
from tests.reliability.sizing import seed, size
from tests.servers import free_port, serve
from vlmhooks.settings import Settings
from vlmhooks.store.db import make_engine
from vlmhooks.store.tables import DELIVERY, SUBMISSION
from vlmhooks.trust.tokens import CallbackTokens

DELIVERIES_PER_PREDICTION = 3
# How often each status is a prediction's true final one.
FINAL_WEIGHTS = {
    Status.COMPLETED: 45,
    Status.FAILED: 20,
    Status.RUNNING: 15,
    Status.PAUSED: 5,
    Status.PENDING: 10,
    Status.ENQUEUED: 5,
}


@dataclass(frozen=True)
class Callback:
    prediction_id: str
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Answer:
    prediction_id: str
    status_code: int
    content_type: str
    verdict: str | None


def statuses_below(final: Status) -> list[Status]:
    """What may accompany `final` without tying it: lower ranks, or `final` itself again."""
    return [s for s in Status if STATUS_RANK[s] < STATUS_RANK[final]] + [final]


def storm_plan(count: int, rng: random.Random) -> dict[str, list[Status]]:
    """For each prediction id, its three delivered statuses (shuffled); max rank is unique."""
    finals = rng.choices(list(FINAL_WEIGHTS), weights=list(FINAL_WEIGHTS.values()), k=count)
    plan: dict[str, list[Status]] = {}
    for index, final in enumerate(finals):
        others = rng.choices(statuses_below(final), k=DELIVERIES_PER_PREDICTION - 1)
        statuses = [final, *others]
        rng.shuffle(statuses)
        plan[f"pred_storm_{index:06d}"] = statuses
    return plan


def true_final(statuses: list[Status]) -> Status:
    return max(statuses, key=lambda status: STATUS_RANK[status])


def storm_callbacks(plan: dict[str, list[Status]], rng: random.Random) -> list[Callback]:
    tokens = CallbackTokens([SECRET_KEY])
    callbacks = []
    for prediction_id, statuses in plan.items():
        path = f"/v1/callbacks/{tokens.mint(submission_id_for(prediction_id))}"
        for status in statuses:
            body = encode(prediction_body(prediction_id, status))
            callbacks.append(Callback(prediction_id, path, body, vlmrun_headers(body)))
    rng.shuffle(callbacks)
    return callbacks


def submission_id_for(prediction_id: str) -> str:
    return prediction_id.replace("pred_", "sub_", 1)


async def send_storm(base_url: str, callbacks: list[Callback], connections: int) -> list[Answer]:
    """POST every callback, `connections` at once, each over its own keep-alive connection."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    queue: asyncio.Queue[Callback] = asyncio.Queue()
    for callback in callbacks:
        queue.put_nowait(callback)
    answers: list[Answer] = []

    async def worker() -> None:
        connection = RawConnection(host, int(port))
        try:
            while not queue.empty():
                callback = queue.get_nowait()
                response = await connection.request(
                    "POST", callback.path, callback.body, callback.headers
                )
                verdict = None
                if response.status == 200:
                    verdict = orjson.loads(response.body).get("verdict")
                answers.append(
                    Answer(callback.prediction_id, response.status, response.content_type, verdict)
                )
        finally:
            await connection.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return answers


def run_storm(base_url: str, engine: Engine, count: int) -> None:
    rng = random.Random(seed())
    plan = storm_plan(count, rng)
    add_submissions(engine, [submission_id_for(p) for p in plan])
    callbacks = storm_callbacks(plan, rng)
    started = time.perf_counter()
    answers = asyncio.run(send_storm(base_url, callbacks, size("STORM_CONNECTIONS")))
    elapsed = time.perf_counter() - started

    assert len(answers) == len(callbacks)
    refused = Counter((a.status_code, a.content_type) for a in answers if a.status_code != 200)
    assert not refused, f"every delivery must be acknowledged with a 200: {refused}"
    # Exactly one copy per prediction created its row; the others found it there.
    verdicts = Counter(a.verdict for a in answers)
    assert verdicts["stored"] == count, verdicts

    rows = prediction_rows(engine)
    assert len(rows) == count
    wrong = {
        prediction_id: (rows[prediction_id]["status"], true_final(statuses).value)
        for prediction_id, statuses in plan.items()
        if prediction_id not in rows or rows[prediction_id]["status"] != true_final(statuses)
    }
    assert wrong == {}, f"{len(wrong)} rows not at their true final status (stored, true)"
    with engine.connect() as connection:
        logged = connection.execute(
            sa.select(DELIVERY.c.verdict, sa.func.count()).group_by(DELIVERY.c.verdict)
        ).all()
        submissions: dict[str, str | None] = dict(
            connection.execute(sa.select(SUBMISSION.c.id, SUBMISSION.c.status)).all()
        )
    logged_verdicts: dict[str, int] = {verdict: count for verdict, count in logged}
    assert sum(logged_verdicts.values()) == len(callbacks), logged_verdicts
    assert "rejected" not in logged_verdicts
    # The submission follows its prediction forward, and never back.
    assert {submission_id_for(p): true_final(s).value for p, s in plan.items()} == submissions
    print(
        f"\nduplicate storm ({engine.dialect.name}): {count} predictions, {len(callbacks)} "
        f"callbacks in {elapsed:.2f} s ({len(callbacks) / elapsed:.0f}/s), "
        f"verdicts {dict(verdicts)}"
    )


def settings_for(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        secret_keys=(SECRET_KEY,),
        vlmrun_webhook_secrets=(WEBHOOK_SECRET,),
        api_keys=(LOOKUP_KEY,),
    )


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_duplicate_storm_in_process(database_url: str, engine: Engine) -> None:
    with serve(create_app(settings_for(database_url))) as server:
        run_storm(server.url, engine, size("STORM_PREDICTIONS"))


@pytest.mark.postgres
def test_duplicate_storm_two_workers_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    engine = make_engine(postgres_url)
    receiver = ReceiverProcess(
        database_url=postgres_url,
        port=free_port(),
        env={
            "VLMHOOKS_SECRET_KEYS": SECRET_KEY,
            "VLMHOOKS_VLMRUN_WEBHOOK_SECRETS": WEBHOOK_SECRET,
            "VLMHOOKS_API_KEYS": LOOKUP_KEY,
        },
        log_path=tmp_path / "receiver.log",
        workers=2,
    )
    try:
        with receiver:
            run_storm(receiver.url, engine, size("STORM_PREDICTIONS"))
    finally:
        engine.dispose()

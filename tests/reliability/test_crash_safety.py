"""Crash safety: kill -9 the receiver under load from the sandbox, restart it, lose nothing.

The receiver runs as `vlm-receiver serve` in a child process; the sandbox (in a thread here)
delivers signed callbacks (`running`, then the terminal one) with fast retries. While
callbacks flow, the receiver's process group gets SIGKILL at random points and is started
again on the same port and database. One request in `DROP_EVERY` asks the sandbox to drop
its callbacks, as a real outage longer than the sender's retries would. Afterwards:

1. every callback the sandbox saw a 2xx for is in the database, at (at least) that status:
   a 2xx means "committed", and no crash may take it back;
2. the receiver never refused a valid callback (no 4xx, no 5xx), crash or not;
3. one `reconcile_once` pass against the sandbox heals exactly the predictions whose
   callbacks never got through, and then every prediction is stored: 0 lost.

Sizes (see `tests/reliability/sizing.py`): `CRASH_PREDICTIONS` and `CRASH_KILLS`; CI by
default, `VLMHOOKS_RELIABILITY_SCALE=full` for 3,000 predictions and 5 kills.
"""

from __future__ import annotations

import io
import itertools
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.engine import Engine

from sandbox import SandboxConfig, create_sandbox_app
from sandbox.faults import FAULTS_HEADER
from schemas.enums import STATUS_RANK, Status
from submit.client import VlmRunClient
from submit.images import InlineImage
from submit.reconcile import reconcile_once
from submit.submitter import SubmitItem, SubmitResult, Submitter
from tests.reliability.callbacks import LOOKUP_KEY, SECRET_KEY, WEBHOOK_SECRET
from tests.reliability.processes import ReceiverProcess
from tests.reliability.sizing import seed, size
from tests.servers import free_port, serve
from vlmhooks.store.db import make_engine
from vlmhooks.store.tables import PREDICTION, SUBMISSION
from vlmhooks.trust.tokens import CallbackTokens

API_KEY = "sk-crash-test"
# Retries outlast any restart (~1 s): 0.05 s doubling gives 25 s of retrying in 10 attempts.
MAX_ATTEMPTS = 10
BACKOFF_BASE = 0.05
DELIVERY_TIMEOUT = 5.0
# The longest a callback still in flight can leave the attempt log untouched: the last
# backoff plus one attempt's timeout, with a margin.
QUIET_SECONDS = BACKOFF_BASE * 2 ** (MAX_ATTEMPTS - 2) + DELIVERY_TIMEOUT + 2
SETTLE_TIMEOUT_SECONDS = 300.0
DROP_EVERY = 20
TERMINAL = {Status.COMPLETED.value, Status.FAILED.value}


def tiny_png(seed: int) -> bytes:
    """A distinct 8x8 image per prediction (the sandbox's output depends on the pixels)."""
    rng = random.Random(seed)
    image = Image.new("RGB", (8, 8), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def items(count: int) -> Iterator[SubmitItem]:
    for index in range(count):
        yield SubmitItem((InlineImage(f"crash-{index}.png", tiny_png(index), "image/png"),))


class DroppingTransport(httpx.HTTPTransport):
    """Real HTTP; every `every`-th generate request asks the sandbox to drop its callbacks."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self._every = every
        self._count = itertools.count(1)
        self._lock = threading.Lock()
        self.dropped_request_ids: set[str] = set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/image/generate"):
            with self._lock:
                if next(self._count) % self._every == 0:
                    request.headers[FAULTS_HEADER] = "drop"
                    self.dropped_request_ids.add(json.loads(request.content)["id"])
        return super().handle_request(request)


def scalar(engine: Engine, query: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(query).scalar_one()


def stored(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(PREDICTION.c.id, PREDICTION.c.status))
        return {row.id: row.status for row in rows}


@dataclass
class Killer:
    """SIGKILLs the receiver when the terminal rows pass each threshold, then restarts it."""

    receiver: ReceiverProcess
    engine: Engine
    thresholds: list[int]
    rng: random.Random
    stop: threading.Event = field(default_factory=threading.Event)
    log: list[str] = field(default_factory=list)
    error: BaseException | None = None

    def run(self) -> None:
        try:
            terminal = sa.select(sa.func.count()).where(PREDICTION.c.status.in_(TERMINAL))
            for threshold in self.thresholds:
                while scalar(self.engine, terminal) < threshold:
                    if self.stop.wait(0.02):
                        return
                # A little later than the threshold, so the kill lands at a random moment.
                time.sleep(self.rng.uniform(0, 0.05))
                at = scalar(self.engine, terminal)
                self.receiver.kill()
                downtime = self.rng.uniform(0, 0.5)
                time.sleep(downtime)
                self.receiver.start()
                self.log.append(f"killed at {at} terminal rows, down {downtime:.2f} s")
        except BaseException as exc:
            self.error = exc


def settled(attempts: list[dict[str, Any]]) -> set[str]:
    """Predictions whose terminal callback was acknowledged or ran out of attempts."""
    return {
        a["prediction_id"]
        for a in attempts
        if a["prediction_status"] in TERMINAL and (a["ok"] or a["attempt"] >= MAX_ATTEMPTS)
    }


def wait_settled(sandbox: httpx.Client, expected: set[str]) -> list[dict[str, Any]]:
    """The sandbox's attempt log once every `expected` terminal callback is settled, or once
    the log has stopped moving for longer than any retry waits (the sender lost the rest)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    last_count, last_change = -1, time.monotonic()
    while True:
        attempts: list[dict[str, Any]] = sandbox.get("/v1/sandbox/deliveries").json()
        if expected <= settled(attempts):
            return attempts
        now = time.monotonic()
        if len(attempts) != last_count:
            last_count, last_change = len(attempts), now
        elif now - last_change > QUIET_SECONDS:
            return attempts
        if now > deadline:
            pytest.fail(f"callbacks still in flight after {SETTLE_TIMEOUT_SECONDS:g} s")
        time.sleep(0.25)


def history(attempts: list[dict[str, Any]], prediction_ids: list[str]) -> dict[str, list[Any]]:
    return {
        prediction_id: [
            (a["prediction_status"], a["attempt"], a["status_code"], a["error"])
            for a in attempts
            if a["prediction_id"] == prediction_id
        ]
        for prediction_id in prediction_ids
    }


# Two workers too: each worker's writer, checkpointer and change detector share the file
# with the other's, and a process that drops its locks on it (ARCHITECTURE.md, "Nothing in
# the receiver opens SQLite's files itself") loses the other's acknowledged writes.
@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_under_load_loses_nothing(database_url: str, tmp_path: Path, workers: int) -> None:
    predictions = size("CRASH_PREDICTIONS")
    kills = size("CRASH_KILLS")
    rng = random.Random(seed())
    # The submitter and reconcile write (on SQLite, queueing on BEGIN IMMEDIATE); the killer
    # polls with plain reads, which must not queue behind the receiver's writer.
    engine = make_engine(database_url, immediate_writes=True)
    reader = make_engine(database_url)
    receiver = ReceiverProcess(
        database_url=database_url,
        port=free_port(),
        env={
            "VLMHOOKS_SECRET_KEYS": SECRET_KEY,
            "VLMHOOKS_VLMRUN_WEBHOOK_SECRETS": WEBHOOK_SECRET,
            "VLMHOOKS_API_KEYS": LOOKUP_KEY,
        },
        log_path=tmp_path / "receiver.log",
        workers=workers,
    )
    sandbox_config = SandboxConfig(
        api_keys=API_KEY,
        vlmrun_webhook_secret=WEBHOOK_SECRET,
        max_attempts=MAX_ATTEMPTS,
        backoff_base=BACKOFF_BASE,
        delivery_timeout=DELIVERY_TIMEOUT,
        deliver_intermediate=True,
    )
    # Kill before 60% of the rows are terminal: a loaded machine notices a threshold late,
    # and a kill after the last callback proves nothing (`failed_attempts > 0` below).
    thresholds = sorted(int(rng.uniform(0.1, 0.6) * predictions) for _ in range(kills))
    transport = DroppingTransport(DROP_EVERY)
    try:
        with (
            receiver,
            serve(create_sandbox_app(sandbox_config)) as sandbox_server,
            VlmRunClient(API_KEY, f"{sandbox_server.url}/v1", transport=transport) as api,
            httpx.Client(
                base_url=sandbox_server.url,
                headers={"Authorization": f"Bearer {API_KEY}"},
                timeout=60,
            ) as sandbox_http,
        ):
            killer = Killer(receiver, reader, thresholds, rng)
            killer_thread = threading.Thread(target=killer.run, daemon=True)
            killer_thread.start()
            submitter = Submitter(
                api,
                domain="image.caption",
                engine=engine,
                tokens=CallbackTokens([SECRET_KEY]),
                public_url=receiver.url,
                concurrency=8,
            )
            try:
                results: list[SubmitResult] = list(submitter.submit(items(predictions)))
                assert [r.error for r in results if r.error] == []
                prediction_ids = {r.prediction_id for r in results if r.prediction_id}
                assert len(prediction_ids) == predictions
                dropped = {
                    r.prediction_id
                    for r in results
                    if r.prediction_id and r.request_id in transport.dropped_request_ids
                }
                killer_thread.join(timeout=SETTLE_TIMEOUT_SECONDS)
            finally:
                killer.stop.set()
                killer_thread.join(timeout=60)
            if killer.error is not None:
                raise killer.error
            assert receiver.kills == kills, killer.log
            attempts = wait_settled(sandbox_http, prediction_ids - dropped)

            # 1. A 2xx is a promise: each acknowledged callback survived every later crash.
            acknowledged = [a for a in attempts if a["ok"]]
            rows = stored(reader)
            broken = [
                f"{a['prediction_id']} acked {a['prediction_status']}, "
                f"stored {rows.get(a['prediction_id'], 'nothing')}"
                for a in acknowledged
                if a["prediction_id"] not in rows
                or STATUS_RANK[Status(rows[a["prediction_id"]])]
                < STATUS_RANK[Status(a["prediction_status"])]
            ]
            assert broken == [], f"{len(broken)} acknowledged callbacks were lost: {broken[:10]}"
            # 2. Down is down (a transport error); up, it takes every valid callback.
            refused = Counter(
                a["status_code"] for a in attempts if a["status_code"] and not a["ok"]
            )
            assert not refused, f"the receiver refused valid callbacks: {refused}"
            failed_attempts = sum(1 for a in attempts if not a["ok"])
            assert failed_attempts > 0, f"no delivery failed: the kills missed it: {killer.log}"
            assert not attempts or not (dropped & {a["prediction_id"] for a in attempts})

            # 3. Reconcile heals what the callbacks did not deliver; then nothing is missing.
            undelivered = sorted(prediction_ids - settled(acknowledged))
            lost_by_sender = sorted(set(undelivered) - dropped - settled(attempts))
            summary = reconcile_once(engine, api, older_than=timedelta(0))
            assert summary.errors == 0, summary.error_messages[:10]
            assert (summary.checked, summary.healed) == (len(undelivered), len(undelivered))
            final = stored(reader)
            lost = prediction_ids - final.keys()
            assert not lost, f"{len(lost)} predictions lost: {sorted(lost)[:10]}"
            assert set(final) == prediction_ids
            assert Counter(final.values()) == {Status.COMPLETED.value: predictions}
            linked = scalar(
                engine,
                sa.select(sa.func.count()).where(SUBMISSION.c.prediction_id.is_not(None)),
            )
            assert linked == predictions
            print(
                f"\ncrash safety ({engine.dialect.name}): {predictions} predictions, "
                f"{receiver.kills} kills ({'; '.join(killer.log)}), {len(attempts)} attempts "
                f"({failed_attempts} failed, {len(acknowledged)} acknowledged), "
                f"{len(dropped)} dropped by fault, {len(lost_by_sender)} lost by the sandbox "
                f"{history(attempts, lost_by_sender[:3])}, reconcile: {summary}"
            )
    finally:
        engine.dispose()
        reader.dispose()

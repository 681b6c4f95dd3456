"""Every sandbox fault mode, end to end: the real submitter, sandbox and receiver over loopback,
on SQLite and on PostgreSQL. Each test says what the receiver's database must end up holding.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from receiver.app import create_app
from sandbox import SandboxConfig, create_sandbox_app
from sandbox.demo.servers import LoopbackServer, bind_loopback
from sandbox.worker import FAIL_FAULT_MESSAGE
from schemas.contract import as_utc
from submit.client import VlmRunClient
from submit.images import expand_image_inputs
from submit.reconcile import reconcile_once
from submit.retry import RetryPolicy
from submit.submitter import SubmitItem, SubmitResult, Submitter
from tests.sandbox.harness import png_bytes
from vlmhooks.settings import Settings
from vlmhooks.store.db import make_engine
from vlmhooks.store.tables import DELIVERY, PREDICTION_READ, SUBMISSION
from vlmhooks.trust.tokens import CallbackTokens

API_KEY = "sk-e2e-faults"
WEBHOOK_SECRET = "e2e-vlmrun-webhook-secret"
TOKEN_KEYS = ("e2e-callback-token-key",)
LOOKUP_KEY = "e2e-lookup-key"
# Short backoffs: the tests exercise the retry schedule, not the real service's pace.
FAST_SANDBOX: dict[str, Any] = {"backoff_base": 0.05, "delivery_timeout": 5.0}
# No real sleeping in the submitter's retries: the delays are recorded instead.
NO_JITTER_RETRIES = RetryPolicy(max_attempts=5, base_delay=0.01, random=lambda: 0.5)


class CountingTransport(httpx.HTTPTransport):
    """Real HTTP, every request kept: proves how many generate attempts went out."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return super().handle_request(request)


def wait_for(check: Callable[[], bool], *, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def reserved_port() -> socket.socket:
    """A loopback port bound but not listening: connections to it are refused, and no other
    process (tests run side by side on one machine) can take it before the receiver does."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class Loop:
    """One sandbox, one receiver (maybe not started yet) and the database they share."""

    engine: Engine
    receiver_socket: socket.socket
    api: VlmRunClient
    sandbox_http: httpx.Client
    stack: ExitStack
    tokens: CallbackTokens = field(default_factory=lambda: CallbackTokens(list(TOKEN_KEYS)))

    @property
    def receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.receiver_socket.getsockname()[1]}"

    def start_receiver(self) -> None:
        settings = Settings(
            database_url=self.engine.url.render_as_string(hide_password=False),
            secret_keys=TOKEN_KEYS,
            vlmrun_webhook_secrets=(WEBHOOK_SECRET,),
            standard_webhook_secrets=(),
            api_keys=(LOOKUP_KEY,),
            fetch_back=False,
        )
        # uvicorn starts listening on the reserved socket: the port never changes hands.
        receiver = LoopbackServer("receiver", self.receiver_socket)
        self.stack.callback(receiver.stop)
        receiver.start(create_app(settings))

    def submit(self, count: int = 1, *, domain: str = "image.caption") -> list[SubmitResult]:
        submitter = Submitter(
            self.api,
            domain=domain,
            engine=self.engine,
            tokens=self.tokens,
            public_url=self.receiver_url,
        )
        (image,) = expand_image_inputs([png_bytes()])
        results = sorted(submitter.submit([SubmitItem((image,))] * count), key=lambda r: r.index)
        assert [r.error for r in results] == [None] * count
        return results

    def lookup(self, prediction_id: str, wait: float = 0) -> httpx.Response:
        """`GET /v1/predictions/{id}?wait=` on the receiver's lookup API."""
        return httpx.get(
            f"{self.receiver_url}/v1/predictions/{prediction_id}",
            params={"wait": f"{wait:g}"},
            headers={"Authorization": f"Bearer {LOOKUP_KEY}"},
            timeout=wait + 10,
        )

    def sandbox_prediction(self, prediction_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.sandbox_http.get(f"/predictions/{prediction_id}").json()
        return body

    def sandbox_attempts(self, prediction_id: str) -> list[dict[str, Any]]:
        answer = self.sandbox_http.get(
            "/sandbox/deliveries", params={"prediction_id": prediction_id}
        )
        attempts: list[dict[str, Any]] = answer.json()
        return attempts

    def predictions(self) -> list[sa.RowMapping]:
        with self.engine.connect() as connection:
            return list(connection.execute(sa.select(*PREDICTION_READ)).mappings())

    def deliveries(self, prediction_id: str) -> list[sa.RowMapping]:
        query = (
            sa.select(DELIVERY)
            .where(DELIVERY.c.prediction_id == prediction_id)
            .order_by(DELIVERY.c.id)
        )
        with self.engine.connect() as connection:
            return list(connection.execute(query).mappings())

    def submission(self, submission_id: str) -> sa.RowMapping:
        query = sa.select(SUBMISSION).where(SUBMISSION.c.id == submission_id)
        with self.engine.connect() as connection:
            return connection.execute(query).mappings().one()


LoopFactory = Callable[..., AbstractContextManager[Loop]]


@pytest.fixture
def loop(database_url: str) -> Iterator[LoopFactory]:
    """`with loop(**sandbox_config) as the_loop:`; `start_receiver=False` leaves it down,
    `client=` gives the API client's keyword arguments (retry policy, sleep, transport).

    The servers stop with the `with`; the engine lives to the end of the test, for asserts.
    """
    engine = make_engine(database_url, immediate_writes=True)

    @contextmanager
    def start(
        *, start_receiver: bool = True, client: dict[str, Any] | None = None, **overrides: Any
    ) -> Iterator[Loop]:
        config = SandboxConfig(
            **{
                **FAST_SANDBOX,
                "api_keys": API_KEY,
                "vlmrun_webhook_secret": WEBHOOK_SECRET,
                **overrides,
            }
        )
        with ExitStack() as stack:
            sandbox = LoopbackServer("sandbox", bind_loopback())
            stack.callback(sandbox.stop)
            sandbox.start(create_sandbox_app(config))
            receiver_socket = reserved_port()
            stack.callback(receiver_socket.close)
            api_url = f"{sandbox.url}/v1"
            api = stack.enter_context(VlmRunClient(API_KEY, api_url, **(client or {})))
            sandbox_http = stack.enter_context(
                httpx.Client(
                    base_url=api_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
                )
            )
            the_loop = Loop(engine, receiver_socket, api, sandbox_http, stack)
            if start_receiver:
                the_loop.start_receiver()
            yield the_loop

    yield start
    engine.dispose()


def verdicts(deliveries: list[sa.RowMapping]) -> list[str]:
    return [delivery["verdict"] for delivery in deliveries]


def test_duplicate_deliveries_store_one_row_and_log_each_duplicate(loop: LoopFactory) -> None:
    with loop(faults="duplicate=3") as the_loop:
        (result,) = the_loop.submit()
        prediction_id = result.prediction_id
        assert prediction_id is not None
        # The sandbox records an attempt once it has the answer, just after the receiver
        # logged the delivery: wait for both sides.
        wait_for(
            lambda: (
                len(the_loop.deliveries(prediction_id)) == 3
                and len(the_loop.sandbox_attempts(prediction_id)) == 3
            ),
            what="three deliveries of one callback, each answered",
        )
        attempts = the_loop.sandbox_attempts(prediction_id)
        api_log = httpx.get(
            f"{the_loop.receiver_url}/v1/deliveries",
            params={"prediction_id": prediction_id},
            headers={"Authorization": f"Bearer {LOOKUP_KEY}"},
        ).json()["data"]

    assert [(a["copy"], a["ok"]) for a in attempts] == [(1, True), (2, True), (3, True)]
    (stored,) = the_loop.predictions()
    assert (stored["id"], stored["status"]) == (prediction_id, "completed")
    assert stored["submission_id"] == result.submission_id
    deliveries = the_loop.deliveries(prediction_id)
    assert verdicts(deliveries) == ["stored", "duplicate", "duplicate"]
    assert [d["reason"] for d in deliveries[1:]] == ["exact duplicate"] * 2
    assert len({d["body_sha256"] for d in deliveries}) == 1
    # The lookup API's audit log says the same, newest first.
    assert [d["verdict"] for d in api_log] == ["duplicate", "duplicate", "stored"]


def test_running_after_completed_is_logged_stale_and_completed_stands(
    loop: LoopFactory,
) -> None:
    with loop(faults="out_of_order", deliver_intermediate=True) as the_loop:
        (result,) = the_loop.submit()
        prediction_id = result.prediction_id
        assert prediction_id is not None
        wait_for(
            lambda: (
                len(the_loop.deliveries(prediction_id)) == 2
                and len(the_loop.sandbox_attempts(prediction_id)) == 2
            ),
            what="two callbacks, each answered",
        )
        attempts = the_loop.sandbox_attempts(prediction_id)
        looked_up = the_loop.lookup(prediction_id).json()

    # The sandbox really sent them in the wrong order...
    assert [a["prediction_status"] for a in attempts] == ["completed", "running"]
    # ...and the receiver kept the terminal status.
    (stored,) = the_loop.predictions()
    assert stored["status"] == "completed"
    assert stored["response"] is not None
    deliveries = the_loop.deliveries(prediction_id)
    assert verdicts(deliveries) == ["stored", "stale"]
    assert deliveries[1]["reason"] == "running arrived after completed; kept completed"
    assert looked_up["status"] == "completed"
    assert the_loop.submission(result.submission_id)["status"] == "completed"


def test_intermediate_running_then_completed_moves_forward(loop: LoopFactory) -> None:
    # The in-order counterpart of the test above: `running` first is an update, not stale.
    with loop(deliver_intermediate=True, processing_delay=0.2) as the_loop:
        (result,) = the_loop.submit()
        prediction_id = result.prediction_id
        assert prediction_id is not None
        wait_for(
            lambda: (
                len(the_loop.deliveries(prediction_id)) == 2
                and len(the_loop.sandbox_attempts(prediction_id)) == 2
            ),
            what="two callbacks, each answered",
        )
        attempts = the_loop.sandbox_attempts(prediction_id)

    assert [a["prediction_status"] for a in attempts] == ["running", "completed"]
    assert verdicts(the_loop.deliveries(prediction_id)) == ["stored", "updated"]
    (stored,) = the_loop.predictions()
    assert stored["status"] == "completed"


def test_dropped_callback_is_not_stored_until_reconcile_polls_it(loop: LoopFactory) -> None:
    with loop(faults="drop") as the_loop:
        (result,) = the_loop.submit()
        prediction_id = result.prediction_id
        assert prediction_id is not None
        wait_for(
            lambda: the_loop.sandbox_prediction(prediction_id)["status"] == "completed",
            what="the sandbox to complete the prediction",
        )
        # A long-poll gives a dropped-by-mistake callback ample time to show up.
        missing = the_loop.lookup(prediction_id, wait=1)
        assert missing.status_code == 404
        assert the_loop.sandbox_attempts(prediction_id) == []
        assert the_loop.predictions() == []

        summary = reconcile_once(the_loop.engine, the_loop.api, older_than=timedelta(0))
        healed = the_loop.lookup(prediction_id)

    assert (summary.checked, summary.healed, summary.errors) == (1, 1, 0)
    assert healed.status_code == 200
    assert healed.json()["status"] == "completed"
    (stored,) = the_loop.predictions()
    assert (stored["status"], stored["source"]) == ("completed", "poll")
    assert stored["submission_id"] == result.submission_id
    assert verdicts(the_loop.deliveries(prediction_id)) == ["stored"]
    assert the_loop.submission(result.submission_id)["status"] == "completed"


def test_delayed_callback_is_stored_after_the_delay(loop: LoopFactory) -> None:
    # Long enough that the early lookup still comes before the callback on a machine busy
    # with other tests (at 0.6 s a loaded run once checked at 0.70 s).
    delay = 1.5
    with loop(faults=f"delay={delay}") as the_loop:
        sent = time.monotonic()
        (result,) = the_loop.submit()
        prediction_id = result.prediction_id
        assert prediction_id is not None
        wait_for(
            lambda: the_loop.sandbox_prediction(prediction_id)["status"] == "completed",
            what="the sandbox to complete the prediction",
        )
        early = the_loop.lookup(prediction_id)
        early_at = time.monotonic() - sent
        stored = the_loop.lookup(prediction_id, wait=10)
        stored_at = time.monotonic() - sent

    assert early_at < delay, "the check came too late to prove anything"
    assert early.status_code == 404
    assert stored.status_code == 200
    assert stored.json()["status"] == "completed"
    assert delay <= stored_at < delay + 5
    (row,) = the_loop.predictions()
    sent_at = the_loop.submission(result.submission_id)["sent_at"]
    assert as_utc(row["received_at"]) - as_utc(sent_at) >= timedelta(seconds=delay)


def test_failed_prediction_is_stored_failed_and_wait_returns_at_once(loop: LoopFactory) -> None:
    with loop(faults="fail, delay=0.3") as the_loop:
        (result,) = the_loop.submit()
        prediction_id = result.prediction_id
        assert prediction_id is not None
        started = time.monotonic()
        # Asked before the callback lands: the long-poll must wake on `failed`, not time out.
        answer = the_loop.lookup(prediction_id, wait=20)
        elapsed = time.monotonic() - started

    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "failed"
    assert body["response"] == {"error": FAIL_FAULT_MESSAGE}
    assert body["vlmhooks"]["terminal"] is True
    assert elapsed < 5
    (stored,) = the_loop.predictions()
    assert (stored["status"], stored["completed_at"] is not None) == ("failed", True)
    assert the_loop.submission(result.submission_id)["status"] == "failed"


def test_generate_503_and_429_are_retried_until_accepted(loop: LoopFactory) -> None:
    sleeps: list[float] = []
    transport = CountingTransport()
    client = {"retry": NO_JITTER_RETRIES, "sleep": sleeps.append, "transport": transport}
    with loop(faults="generate_503=2, generate_429=1", client=client) as the_loop:
        (result,) = the_loop.submit()
        prediction_id = result.prediction_id
        assert prediction_id is not None
        stored = the_loop.lookup(prediction_id, wait=10)
        on_sandbox = the_loop.sandbox_http.get("/predictions").json()

    assert result.status == "enqueued"
    # Three refusals, each with the sandbox's Retry-After of 1 s, then the fourth got through.
    assert sleeps == [1.0, 1.0, 1.0]
    assert len(transport.requests) == 4
    assert len({json.loads(r.content)["id"] for r in transport.requests}) == 1
    assert [p["id"] for p in on_sandbox] == [prediction_id]
    assert stored.json()["status"] == "completed"
    (row,) = the_loop.predictions()
    assert row["submission_id"] == result.submission_id
    submission = the_loop.submission(result.submission_id)
    assert (submission["error"], submission["prediction_id"]) == (None, prediction_id)


def test_generate_refusals_beyond_the_retry_budget_are_reported(loop: LoopFactory) -> None:
    transport = CountingTransport()
    retry = RetryPolicy(max_attempts=3, base_delay=0.01)
    client = {"retry": retry, "sleep": lambda _s: None, "transport": transport}
    with loop(faults="generate_503=5", client=client) as the_loop:
        submitter = Submitter(
            the_loop.api,
            domain="image.caption",
            engine=the_loop.engine,
            tokens=the_loop.tokens,
            public_url=the_loop.receiver_url,
        )
        (image,) = expand_image_inputs([png_bytes()])
        (result,) = list(submitter.submit([SubmitItem((image,))]))

    assert len(transport.requests) == 3
    assert result.prediction_id is None
    assert result.error is not None and "503" in result.error
    submission = the_loop.submission(result.submission_id)
    assert submission["prediction_id"] is None
    assert "503" in submission["error"]
    assert the_loop.predictions() == []


def test_receiver_down_for_the_first_attempts_is_stored_after_a_retry(
    loop: LoopFactory,
) -> None:
    # Backoff 0.1, 0.2, 0.4, 0.8, 1.6 s: time enough for the receiver to come up.
    with loop(start_receiver=False, max_attempts=6, backoff_base=0.1) as the_loop:
        (result,) = the_loop.submit()
        prediction_id = result.prediction_id
        assert prediction_id is not None
        wait_for(
            lambda: len(the_loop.sandbox_attempts(prediction_id)) >= 1,
            what="a first delivery attempt to fail",
        )
        the_loop.start_receiver()
        stored = the_loop.lookup(prediction_id, wait=10)
        attempts = the_loop.sandbox_attempts(prediction_id)

    assert stored.status_code == 200
    assert stored.json()["status"] == "completed"
    *refused, delivered = attempts
    assert refused, f"the receiver was down for at least the first attempt: {attempts}"
    assert all(a["status_code"] is None and "ConnectError" in a["error"] for a in refused)
    assert (delivered["ok"], delivered["status_code"], delivered["attempt"]) == (
        True,
        200,
        len(attempts),
    )
    # Refused connections never reached the receiver: one delivery, stored.
    assert verdicts(the_loop.deliveries(prediction_id)) == ["stored"]
    (row,) = the_loop.predictions()
    assert (row["status"], row["submission_id"]) == ("completed", result.submission_id)

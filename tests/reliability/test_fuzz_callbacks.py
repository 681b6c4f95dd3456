"""Bad input: property-based fuzzing of `POST /v1/callbacks/{token}` over real HTTP.

A receiver runs in a uvicorn thread on a SQLite file, with both provider signatures on
(VLM Run's and Standard Webhooks) and a small body cap. Hypothesis sends random bytes,
random JSON, near-valid `PredictionResponse` dicts with mutated fields, random and
malformed headers, valid and garbage tokens, bodies over the cap, and (on a raw socket)
bodies shorter than their Content-Length. For every request:

- never a 5xx; every error is `application/problem+json` with type, title, status, detail;
- a non-2xx answer leaves the `prediction` table exactly as it was (no row, no update);
- a request without a valid token does not even grow the delivery audit log.

The number of cases is `FUZZ_EXAMPLES` (see `tests/reliability/sizing.py`), shared out
between the input kinds: a few hundred in CI, 6,000 with `VLMHOOKS_RELIABILITY_SCALE=full`.

What these fuzzers found is pinned down, deterministically and on both databases, in
`test_hostile_payloads.py`.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from receiver.app import create_app
from receiver.ingest.verify import require_json_content_type
from schemas.enums import Status
from tests.reliability.callbacks import (
    DATABASES,
    LOOKUP_KEY,
    SECRET_KEY,
    STANDARD_SECRET,
    WEBHOOK_SECRET,
    add_submissions,
    encode,
    prediction_body,
    scratch_database,
    standard_headers,
)
from tests.reliability.fuzz_strategies import (
    CONTENT_TYPES,
    FRAMING_HEADERS,
    HEADER_NAMES,
    HEADER_TEXT,
    JSON_VALUES,
    MUTATIONS,
    HeaderPlan,
    Mutation,
    as_header_list,
    encode_json,
    header_plan,
    mutate,
    text_mutations,
)
from tests.reliability.sizing import size
from tests.servers import serve
from vlmhooks.errors import UnsupportedMediaType
from vlmhooks.settings import Settings
from vlmhooks.store.db import make_engine
from vlmhooks.store.tables import DELIVERY, PREDICTION
from vlmhooks.trust.signatures import VLMRUN_SIGNATURE_HEADER, sign_vlmrun
from vlmhooks.trust.tokens import CallbackTokens

MAX_BODY = 64 * 1024
SUBMISSION = "sub_fuzz"
# A submission already bound to a prediction: any other prediction id for it is a 409.
BOUND_SUBMISSION, BOUND_PREDICTION = "sub_fuzz_bound", "pred_fuzz_bound"
PROBLEM = "application/problem+json"
# Each kind's share of FUZZ_EXAMPLES.
SHARES = {
    "bytes": 0.14,
    "json": 0.14,
    "near_valid": 0.26,
    "headers": 0.20,
    "tokens": 0.12,
    "huge": 0.08,
    "truncated": 0.06,
}
TRUNCATED_READ_TIMEOUT = 0.3


def examples(kind: str) -> int:
    return max(5, round(size("FUZZ_EXAMPLES") * SHARES[kind]))


def fuzz_settings(kind: str) -> settings:
    return settings(
        max_examples=examples(kind),
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


# -- the receiver under test ---------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What a rejected request must not change."""

    predictions: tuple[Any, ...]
    deliveries: int


@dataclass
class FuzzReceiver:
    url: str
    client: httpx.Client
    engine: Engine
    tokens: CallbackTokens
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        return host, int(port)

    def snapshot(self) -> Snapshot:
        with self.engine.connect() as connection:
            predictions = connection.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(PREDICTION.c.delivery_count), 0),
                    sa.func.max(PREDICTION.c.updated_at),
                )
            ).one()
            deliveries = connection.execute(sa.select(sa.func.count()).select_from(DELIVERY))
            return Snapshot(tuple(predictions), deliveries.scalar_one())

    def post(
        self, token: str, body: Any, headers: list[tuple[bytes, bytes]] | dict[str, str]
    ) -> httpx.Response:
        return self.client.post(f"/v1/callbacks/{token}", content=body, headers=headers)

    def check(
        self,
        status: int,
        content_type: str,
        body: bytes,
        before: Snapshot,
        *,
        token_valid: bool = True,
    ) -> None:
        """The invariants every answer keeps; `status` is tallied for the coverage checks."""
        self.outcomes[str(status)] += 1
        assert status < 500, f"server error {status}: {body[:500]!r}"
        if status >= 400:
            assert content_type.startswith(PROBLEM), (status, content_type, body[:200])
            problem = json.loads(body)
            assert {"type", "title", "status", "detail"} <= problem.keys(), problem
            assert problem["status"] == status
        elif status >= 300:
            # Starlette's redirect_slashes: a token with a trailing "/" (say "%2F") points
            # the sender at the path without it, where the token is checked as usual.
            assert status == 307, status
        else:
            assert 200 <= status < 300, status
            assert content_type.startswith("application/json"), content_type
        after = self.snapshot()
        if not 200 <= status < 300:
            assert after.predictions == before.predictions, "a rejected request changed rows"
        if not token_valid:
            assert after.deliveries == before.deliveries, "a tokenless request was logged"
            assert not 200 <= status < 300, "a request without a valid token was accepted"

    def check_response(
        self, response: httpx.Response, before: Snapshot, *, token_valid: bool = True
    ) -> None:
        self.check(
            response.status_code,
            response.headers.get("content-type", ""),
            response.content,
            before,
            token_valid=token_valid,
        )

    def assert_alive(self) -> None:
        assert self.client.get("/healthz").status_code == 200


def receiver_settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        secret_keys=(SECRET_KEY,),
        vlmrun_webhook_secrets=(WEBHOOK_SECRET,),
        standard_webhook_secrets=(STANDARD_SECRET,),
        api_keys=(LOOKUP_KEY,),
        max_body_bytes=MAX_BODY,
    )


@pytest.fixture(scope="module", params=DATABASES)
def _fuzz_receiver(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzReceiver]:
    with scratch_database(request.param, request, tmp_path_factory.mktemp("fuzz")) as url:
        engine = make_engine(url)
        bind_submission(engine)
        try:
            with (
                serve(create_app(receiver_settings(url))) as server,
                httpx.Client(base_url=server.url, timeout=30) as client,
            ):
                yield FuzzReceiver(server.url, client, engine, CallbackTokens([SECRET_KEY]))
        finally:
            engine.dispose()


@pytest.fixture
def fuzz(_fuzz_receiver: FuzzReceiver, request: pytest.FixtureRequest) -> Iterator[FuzzReceiver]:
    _fuzz_receiver.outcomes.clear()
    yield _fuzz_receiver
    outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(_fuzz_receiver.outcomes.items()))
    print(f"\n{request.node.name}: {sum(_fuzz_receiver.outcomes.values())} cases ({outcomes})")


def bind_submission(engine: Engine) -> None:
    from vlmhooks.store.tables import SUBMISSION as SUBMISSION_TABLE

    add_submissions(engine, [BOUND_SUBMISSION])
    with engine.begin() as connection:
        connection.execute(
            SUBMISSION_TABLE.update()
            .where(SUBMISSION_TABLE.c.id == BOUND_SUBMISSION)
            .values(prediction_id=BOUND_PREDICTION)
        )


def fresh_token(fuzz: FuzzReceiver) -> str:
    # A submission with no row: nothing binds it, so any prediction id may be stored.
    return fuzz.tokens.mint(f"sub_fuzz_{uuid.uuid4().hex}")


def signed_headers(body: bytes, *, now: float | None = None) -> dict[str, str]:
    """Both schemes the receiver requires, over the exact bytes sent."""
    headers = {
        "content-type": "application/json",
        VLMRUN_SIGNATURE_HEADER: sign_vlmrun(WEBHOOK_SECRET, body),
    }
    stamp = time.time() if now is None else now
    headers.update(standard_headers(body, f"msg_{uuid.uuid4().hex}", stamp))
    return headers


def valid_body(prediction_id: str | None = None) -> bytes:
    status = Status.COMPLETED
    return encode(prediction_body(prediction_id or f"pred_fuzz_{uuid.uuid4().hex}", status))


# -- the fuzzers ---------------------------------------------------------------------------


def test_random_bytes_bodies(fuzz: FuzzReceiver) -> None:
    @fuzz_settings("bytes")
    @given(body=st.binary(max_size=4096), content_type=CONTENT_TYPES, sign=st.booleans())
    def case(body: bytes, content_type: str, sign: bool) -> None:
        headers = signed_headers(body) if sign else {}
        headers["content-type"] = content_type
        before = fuzz.snapshot()
        fuzz.check_response(fuzz.post(fresh_token(fuzz), body, headers), before)

    case()
    # Unsigned bytes stop at the signature, signed ones at the media type or the parser.
    assert {"401", "400", "415"} <= fuzz.outcomes.keys(), fuzz.outcomes


def test_random_json_bodies(fuzz: FuzzReceiver) -> None:
    top_level = JSON_VALUES | st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=8)

    @fuzz_settings("json")
    @given(value=top_level, ascii_only=st.booleans())
    def case(value: Any, ascii_only: bool) -> None:
        body = encode_json(value, ascii_only)
        before = fuzz.snapshot()
        fuzz.check_response(fuzz.post(fresh_token(fuzz), body, signed_headers(body)), before)

    case()
    assert "422" in fuzz.outcomes, fuzz.outcomes


def test_near_valid_predictions(fuzz: FuzzReceiver) -> None:
    @fuzz_settings("near_valid")
    @given(
        status=st.sampled_from(list(Status)),
        mutations=st.lists(MUTATIONS, max_size=3),
        bound=st.integers(0, 9).map(lambda n: n == 0),
        ascii_only=st.booleans(),
    )
    def case(status: Status, mutations: list[Mutation], bound: bool, ascii_only: bool) -> None:
        base = prediction_body(f"pred_fuzz_{uuid.uuid4().hex}", status)
        body = encode_json(mutate(base, mutations), ascii_only)
        token = fuzz.tokens.mint(BOUND_SUBMISSION) if bound else fresh_token(fuzz)
        before = fuzz.snapshot()
        response = fuzz.post(token, body, signed_headers(body))
        fuzz.check_response(response, before)
        if bound and response.status_code == 200:
            # The bound submission takes its own prediction only.
            assert response.json()["id"] == BOUND_PREDICTION

    case()
    assert {"200", "422", "409"} <= fuzz.outcomes.keys(), fuzz.outcomes


def test_random_and_malformed_headers(fuzz: FuzzReceiver) -> None:
    @fuzz_settings("headers")
    @given(data=st.data())
    def case(data: st.DataObject) -> None:
        body = valid_body()
        now = time.time()
        valid = signed_headers(body, now=now)
        stale = standard_headers(body, valid["webhook-id"], now - 3600)
        plans = {
            "content-type": data.draw(
                header_plan("application/json")
                | CONTENT_TYPES.map(lambda v: HeaderPlan("ct", (v,)))
            ),
            VLMRUN_SIGNATURE_HEADER: data.draw(header_plan(valid[VLMRUN_SIGNATURE_HEADER])),
            "webhook-id": data.draw(header_plan(valid["webhook-id"])),
            "webhook-timestamp": data.draw(
                header_plan(valid["webhook-timestamp"], stale=stale["webhook-timestamp"])
            ),
            "webhook-signature": data.draw(
                header_plan(valid["webhook-signature"], stale=stale["webhook-signature"])
            ),
        }
        extra = data.draw(
            st.lists(
                st.tuples(HEADER_NAMES, HEADER_TEXT).filter(
                    lambda nv: nv[0].lower() not in FRAMING_HEADERS | {n.lower() for n in plans}
                ),
                max_size=4,
            )
        )
        headers = as_header_list(plans) + [
            (n.encode("ascii"), v.encode("latin-1")) for n, v in extra
        ]
        before = fuzz.snapshot()
        response = fuzz.post(fresh_token(fuzz), body, headers)
        fuzz.check_response(response, before)
        signature_plans = [plan for name, plan in plans.items() if name != "content-type"]
        if any(plan.kind in ("missing", "garbage", "doubled") for plan in signature_plans):
            assert response.status_code == 401, response.text
        elif all(plan.kind == "valid" for plan in signature_plans):
            expected = expected_media_status(plans["content-type"])
            if expected is not None:
                assert response.status_code == expected, response.text

    case()


def expected_media_status(plan: HeaderPlan) -> int | None:
    """200 or 415 for a correctly signed body under this Content-Type plan; None if unsure."""
    if plan.kind == "missing":
        return 415
    if len(plan.values) != 1:
        return None  # a doubled header is joined by the client; either answer is honest
    try:
        require_json_content_type(plan.values[0])
    except UnsupportedMediaType:
        return 415
    return 200


def test_valid_and_garbage_tokens(fuzz: FuzzReceiver) -> None:
    month = 30 * 24 * 3600
    expired = CallbackTokens([SECRET_KEY], clock=lambda: time.time() - month)
    future = CallbackTokens([SECRET_KEY], clock=lambda: time.time() + 3600)
    other_key = CallbackTokens(["some-other-deployment-key"])
    minted: dict[str, Callable[[str], str]] = {
        "expired": expired.mint,
        "future": future.mint,
        "other_key": other_key.mint,
    }

    @fuzz_settings("tokens")
    @given(
        kind=st.sampled_from(["valid", "garbage", "mutated", "expired", "future", "other_key"]),
        data=st.data(),
    )
    def case(kind: str, data: st.DataObject) -> None:
        submission_id = f"sub_fuzz_{uuid.uuid4().hex}"
        valid = fuzz.tokens.mint(submission_id)
        if kind == "valid":
            token = valid
        elif kind == "garbage":
            token = data.draw(st.text(max_size=300))
        elif kind == "mutated":
            token = data.draw(text_mutations(valid))
        else:
            token = minted[kind](submission_id)
        body = valid_body()
        before = fuzz.snapshot()
        response = fuzz.post(quote(token, safe=""), body, signed_headers(body))
        # A mutated token may still verify (base64 has spare bits); nothing else may.
        fuzz.check_response(response, before, token_valid=kind in ("valid", "mutated"))
        if kind == "valid":
            assert response.status_code == 200, response.text

    case()
    assert {"200", "401"} <= fuzz.outcomes.keys(), fuzz.outcomes


def test_bodies_over_the_cap(fuzz: FuzzReceiver) -> None:
    @fuzz_settings("huge")
    @given(length=st.integers(MAX_BODY + 1, 4 * MAX_BODY), chunked=st.booleans())
    def case(length: int, chunked: bool) -> None:
        body = b'{"id": "pred_fuzz_huge", "response": "' + b"x" * length + b'"}'
        headers = signed_headers(body)
        content: Any = body
        if chunked:  # no Content-Length: the cap must hold while the body streams in
            content = iter([body[i : i + 16384] for i in range(0, len(body), 16384)])
        before = fuzz.snapshot()
        try:
            response = fuzz.post(fresh_token(fuzz), content, headers)
        except httpx.TransportError:
            # The receiver may close before the client finishes sending: a refusal too.
            fuzz.outcomes["closed"] += 1
            assert fuzz.snapshot().predictions == before.predictions
        else:
            fuzz.check_response(response, before)
            assert response.status_code == 413, response.text
        fuzz.assert_alive()

    case()
    assert "413" in fuzz.outcomes, fuzz.outcomes


def test_bodies_shorter_than_content_length(fuzz: FuzzReceiver) -> None:
    host, port = fuzz.host_port

    @fuzz_settings("truncated")
    @given(
        cut=st.floats(min_value=0, max_value=1, exclude_max=True),
        missing=st.integers(1, 1000) | st.integers(MAX_BODY, 10 * MAX_BODY),
        ending=st.sampled_from(["half_close", "stall", "close"]),
    )
    def case(cut: float, missing: int, ending: str) -> None:
        body = valid_body()
        sent = body[: int(len(body) * cut)]
        headers = signed_headers(body)
        head = f"POST /v1/callbacks/{fresh_token(fuzz)} HTTP/1.1\r\nhost: {host}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head += f"content-length: {len(sent) + missing}\r\n\r\n"
        before = fuzz.snapshot()
        answer = send_truncated(host, port, head.encode("latin-1") + sent, ending)
        fuzz.assert_alive()
        if answer is None:
            fuzz.outcomes[f"no answer ({ending})"] += 1
            assert fuzz.snapshot().predictions == before.predictions
            return
        status, content_type, answer_body = answer
        fuzz.check(status, content_type, answer_body, before)
        assert not 200 <= status < 300

    case()


def send_truncated(host: str, port: int, data: bytes, ending: str) -> tuple[int, str, bytes] | None:
    """Send `data` (less body than announced); the answer, if one came before the timeout."""
    with socket.create_connection((host, port), timeout=TRUNCATED_READ_TIMEOUT) as sock:
        sock.sendall(data)
        if ending == "close":
            return None
        if ending == "half_close":
            sock.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    if not received:
        return None
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    content_type = {k.strip().lower(): v.strip() for k, v in fields.items()}.get("content-type", "")
    return int(status_line.split(" ")[1]), content_type, body

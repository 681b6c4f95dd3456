"""GET /v1/predictions/{id} (with ?wait=), /v1/submissions/{id} and /v1/deliveries over HTTP."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from schemas.contract import PredictionResponse
from tests.receiver.lookup_support import after, client, prediction, running_receiver
from vlmhooks.store.ingest_one import ingest_prediction
from vlmhooks.store.tables import DELIVERY, SUBMISSION


def store(engine: Engine, body: dict[str, object], submission_id: str | None = None) -> None:
    ingest_prediction(engine, body, submission_id=submission_id, source="callback")


def test_prediction_reads_in_the_apis_own_shape(database_url: str, engine: Engine) -> None:
    store(engine, prediction("pred-1", domain="document.invoice", api_only_field={"x": 1}))
    with running_receiver(database_url) as server, client(server) as http:
        response = http.get("/v1/predictions/pred-1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    # Code written for the API's GET parses it unchanged, unknown fields included.
    parsed = PredictionResponse.model_validate(body)
    assert parsed.id == "pred-1" and parsed.status == "completed"
    assert parsed.response == {"text": "result of pred-1"}
    assert parsed.usage is not None and parsed.usage.credits_used == 1
    assert body["created_at"] == "2026-01-01T00:00:00Z"
    assert body["completed_at"] == "2026-01-01T00:00:03Z"
    assert body["domain"] == "document.invoice" and body["api_only_field"] == {"x": 1}
    ours = body["vlmhooks"]
    assert ours["terminal"] is True and ours["delivery_count"] == 1
    assert ours["source"] == "callback"


def test_unknown_prediction_is_a_404_problem(database_url: str) -> None:
    with running_receiver(database_url) as server, client(server) as http:
        response = http.get("/v1/predictions/nope")
        nul = http.get("/v1/predictions/a%00b")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404 and "nope" in response.json()["detail"]
    # NUL can never be stored on PostgreSQL; it must be a 404, not a driver error.
    assert nul.status_code == 404


def test_long_polls(database_url: str, engine: Engine) -> None:
    """Several waiters at once on one receiver, each woken (or not) by its own write."""
    store(engine, prediction("to-complete", "running"))
    store(engine, prediction("to-fail", "running"))
    store(engine, prediction("stays-running", "pending"))
    store(engine, prediction("already", "pending"))
    waits: dict[str, float | str] = {
        "to-complete": 20,  # capped at max_wait=2 below; woken long before that
        "to-fail": 20,
        "not-yet-received": "20",
        "stays-running": 0.8,  # a non-terminal update must not end the wait
        "never": 3600,  # held for max_wait, then 404
        "already": 0,  # no wait: answered at once
    }
    writes = [
        prediction("to-complete", "completed"),
        prediction("to-fail", "failed"),
        prediction("not-yet-received", "failed"),
        prediction("stays-running", "running"),
    ]

    def write_all() -> None:
        for body in writes:
            store(engine, body)

    def long_poll(prediction_id: str) -> tuple[int, object, float]:
        started = time.monotonic()
        with client(server) as http:
            response = http.get(
                f"/v1/predictions/{prediction_id}", params={"wait": waits[prediction_id]}
            )
        # `status` is the prediction's, or the problem's HTTP status on a 404.
        return response.status_code, response.json()["status"], time.monotonic() - started

    with running_receiver(database_url, max_wait=2) as server:
        with ThreadPoolExecutor(len(waits)) as pool, after(0.3, write_all):
            futures = {name: pool.submit(long_poll, name) for name in waits}
        results = {name: future.result() for name, future in futures.items()}

    def check(name: str, code: int, status: object, low: float, high: float) -> None:
        got_code, got_status, elapsed = results[name]
        assert (got_code, got_status) == (code, status), name
        assert low < elapsed < high, (name, elapsed)

    # Terminal is completed *or* failed; woken by the write (~0.3 s), not the 2 s cap.
    check("to-complete", 200, "completed", 0.25, 1.5)
    check("to-fail", 200, "failed", 0.25, 1.5)
    check("not-yet-received", 200, "failed", 0.25, 1.5)
    # Still not terminal when its wait ran out: the stored state, not a 404.
    check("stays-running", 200, "running", 0.75, 1.9)
    # Held for max_wait (not 3600 s), and only then a 404.
    check("never", 404, 404, 1.95, 4)
    check("already", 200, "pending", 0, 1)


def test_invalid_wait_is_a_400(sqlite_url: str) -> None:
    # Validation precedes any database access, so one backend is enough.
    with running_receiver(sqlite_url) as server, client(server) as http:
        for wait in ("-1", "soon", "nan", "inf", "1e999", "-0.5", ""):
            response = http.get("/v1/predictions/x", params={"wait": wait})
            assert response.status_code == 400, wait
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["parameter"] == "wait"


def _add_submission(engine: Engine, submission_id: str, prediction_id: str | None) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            SUBMISSION.insert().values(
                id=submission_id,
                request_id="req-1",
                domain="document.invoice",
                json_schema={"type": "object"},
                callback_url=f"https://hooks.example/v1/callbacks/secret-token-{submission_id}",
                batch=True,
                image_count=1,
                prediction_id=prediction_id,
                status="pending",
                created_at=now,
                updated_at=now,
            )
        )


def test_submission_with_prediction_and_delivery_history(database_url: str, engine: Engine) -> None:
    _add_submission(engine, "sub-1", "pred-s")
    store(engine, prediction("pred-s", "running"), submission_id="sub-1")
    store(engine, prediction("pred-s", "completed"), submission_id="sub-1")
    store(engine, prediction("pred-s", "completed"), submission_id="sub-1")  # duplicate
    _add_submission(engine, "sub-2", None)
    with running_receiver(database_url) as server, client(server) as http:
        response = http.get("/v1/submissions/sub-1")
        empty = http.get("/v1/submissions/sub-2")
        missing = http.get("/v1/submissions/sub-404")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "sub-1" and body["domain"] == "document.invoice"
    assert body["prediction"]["id"] == "pred-s" and body["prediction"]["status"] == "completed"
    assert [d["verdict"] for d in body["deliveries"]] == ["stored", "updated", "duplicate"]
    assert all("body" not in d for d in body["deliveries"])
    # The token in the callback URL is a credential: never echoed back.
    assert "secret-token" not in response.text
    assert body["callback_url"] == "https://hooks.example/v1/callbacks/<redacted>"
    assert empty.json()["prediction"] is None and empty.json()["deliveries"] == []
    assert missing.status_code == 404


def test_deliveries_for_audits(database_url: str, engine: Engine) -> None:
    store(engine, prediction("pred-a", "running"), submission_id="sub-a")
    store(engine, prediction("pred-a", "completed"), submission_id="sub-a")
    store(engine, prediction("pred-b", "completed"), submission_id="sub-b")
    binary = b"\xff\xfe not utf-8"
    with engine.begin() as connection:
        connection.execute(
            DELIVERY.insert().values(
                prediction_id="pred-b",
                submission_id="sub-b",
                received_at=datetime(2026, 1, 2, tzinfo=UTC),
                verdict="rejected",
                reason="415 Unsupported media type",
                http_status=415,
                source="callback",
                body_sha256="0" * 64,
                body=binary,
            )
        )
    with running_receiver(database_url) as server, client(server) as http:
        of_a = http.get("/v1/deliveries", params={"prediction_id": "pred-a"}).json()
        of_b = http.get("/v1/deliveries", params={"submission_id": "sub-b"}).json()
        with_body = http.get(
            "/v1/deliveries", params={"prediction_id": "pred-b", "include_body": "true"}
        ).json()
        first = http.get("/v1/deliveries", params={"limit": 2}).json()
        rest = http.get("/v1/deliveries", params={"limit": 2, "cursor": first["next_cursor"]})
        bad_bool = http.get("/v1/deliveries", params={"include_body": "yes please"})
    assert [d["verdict"] for d in of_a["data"]] == ["updated", "stored"]  # newest first
    assert {d["prediction_id"] for d in of_a["data"]} == {"pred-a"}
    assert [d["verdict"] for d in of_b["data"]] == ["rejected", "stored"]
    assert "body" not in of_b["data"][0] and of_b["data"][0]["body_size"] == len(binary)
    rejected, stored = with_body["data"]
    assert rejected["body_encoding"] == "base64"
    assert base64.b64decode(rejected["body"]) == binary
    assert stored["body_encoding"] == "utf-8" and '"id":"pred-b"' in stored["body"]
    ids = [d["id"] for d in first["data"]] + [d["id"] for d in rest.json()["data"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4
    assert rest.json()["next_cursor"] is None
    assert bad_bool.status_code == 400 and bad_bool.json()["parameter"] == "include_body"


def test_delivery_count_matches_database(database_url: str, engine: Engine) -> None:
    for index in range(5):
        store(engine, prediction(f"pred-{index}"))
    with running_receiver(database_url) as server, client(server) as http:
        listed = http.get("/v1/deliveries", params={"limit": 200}).json()["data"]
    with engine.connect() as connection:
        total = connection.execute(sa.select(sa.func.count()).select_from(DELIVERY)).scalar()
    assert len(listed) == total == 5

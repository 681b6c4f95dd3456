"""`POST /v1/callbacks/{token}` over real HTTP, on a SQLite file and on PostgreSQL: tokens,
payload checks, storage verdicts, the delivery log and the acknowledgement."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from receiver.state import ReceiverState
from tests.receiver.callback_harness import (
    FROZEN_NOW,
    NEW_KEY,
    OLD_KEY,
    Receiver,
    assert_ack,
    assert_problem,
    encode,
    mint,
    prediction_body,
    receiver_settings,
    running_receiver,
    tampered,
)

INVOICE_SCHEMA = {
    "type": "object",
    "required": ["total", "currency", "vendor"],
    "properties": {"total": {"type": "number"}, "currency": {"type": "string"}},
}


# --- tokens ---------------------------------------------------------------------------------


def test_valid_token_stores_and_links_a_submission_with_no_row(receiver: Receiver) -> None:
    response = receiver.post_json(prediction_body("completed"), token=mint("sub_any_client"))
    assert_ack(response, verdict="stored", status="completed")
    assert response.json()["id"] == "pred_1"
    (row,) = receiver.predictions()
    assert row["submission_id"] == "sub_any_client"
    assert row["response"] == {"total": 42.5, "currency": "EUR"}
    assert row["source"] == "callback"


def test_bad_tokens_are_401_and_not_logged(receiver: Receiver) -> None:
    bad_tokens = {
        "tampered": tampered(mint()),
        "unknown key": mint(keys=("a-key-we-never-had",)),
        "garbage": "not-a-token",
        "non-ascii": "%C3%A9t%C3%A9",
        "authentic, but no row could hold its submission id": mint("s" * 65),
    }
    for case, token in bad_tokens.items():
        response = receiver.post(token, encode(prediction_body()))
        problem = assert_problem(response, 401)
        assert problem["type"].endswith("/invalid-token"), case
        assert "expired" not in problem["detail"], case
        assert response.headers["connection"] == "close", case
    assert receiver.predictions() == [] and receiver.deliveries() == []


def test_expired_token_is_401_saying_expired(database_url: str) -> None:
    max_age = 3600
    settings = receiver_settings(database_url, token_max_age=max_age)
    token = mint(at=FROZEN_NOW - max_age - 1)
    fresh = mint("sub_2", at=FROZEN_NOW - max_age + 1)
    with running_receiver(settings, clock=lambda: FROZEN_NOW) as receiver:
        problem = assert_problem(receiver.post(token, encode(prediction_body())), 401)
        assert "expired" in problem["detail"] and problem["title"] == "Expired callback token"
        assert_ack(
            receiver.post(fresh, encode(prediction_body())), verdict="stored", status="completed"
        )


def test_key_rotation_accepts_old_and_new_keys(database_url: str) -> None:
    settings = receiver_settings(database_url, secret_keys=(OLD_KEY, NEW_KEY))
    with running_receiver(settings) as receiver:
        by_old = mint("sub_old", keys=(OLD_KEY,))
        by_new = mint("sub_new", keys=(NEW_KEY,))
        assert_ack(
            receiver.post_json(prediction_body(prediction_id="p_old"), token=by_old),
            verdict="stored",
            status="completed",
        )
        assert_ack(
            receiver.post_json(prediction_body(prediction_id="p_new"), token=by_new),
            verdict="stored",
            status="completed",
        )
    retired = receiver_settings(database_url, secret_keys=(NEW_KEY,))
    with running_receiver(retired) as receiver:
        assert_problem(receiver.post_json(prediction_body(), token=by_old), 401)
        assert_ack(
            receiver.post_json(prediction_body(prediction_id="p_new"), token=by_new),
            verdict="duplicate",
            status="completed",
            duplicate=True,
        )


# --- payload checks -------------------------------------------------------------------------


JSON_MEDIA_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    'application/json;charset="UTF-8"',
    "application/vnd.vlmrun.prediction+json",
    "APPLICATION/JSON",
]
OTHER_MEDIA_TYPES = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/jsonx",
    "application/json; charset=latin-1",
    "",
    "json",
]
INVALID_JSON = [b"", b"{", b"{'id': 1}", b"\xff\xfe{}", b"[1, 2,]", b"NaN"]


def test_json_media_types_are_accepted_and_others_are_415(receiver: Receiver) -> None:
    for content_type in JSON_MEDIA_TYPES:
        response = receiver.post(mint(), encode(prediction_body()), {"content-type": content_type})
        assert response.status_code == 200, (content_type, response.text)
    for content_type in OTHER_MEDIA_TYPES:
        response = receiver.post(mint(), encode(prediction_body()), {"content-type": content_type})
        assert_problem(response, 415)
    no_type = receiver.client.post(f"/v1/callbacks/{mint()}", content=encode(prediction_body()))
    assert "content-type" not in no_type.request.headers
    assert_problem(no_type, 415, detail_contains="missing")
    refused = [d for d in receiver.deliveries() if d["verdict"] == "rejected"]
    assert [d["http_status"] for d in refused] == [415] * 7
    assert len(receiver.deliveries()) == len(JSON_MEDIA_TYPES) + 7
    (row,) = receiver.predictions()
    assert row["delivery_count"] == 1  # only the accepted ones reached the store


def test_invalid_json_is_400_and_non_object_json_422(receiver: Receiver) -> None:
    for body in INVALID_JSON:
        assert_problem(receiver.post(mint(), body), 400, detail_contains="JSON")
    deliveries = receiver.deliveries()
    assert [d["body"] for d in deliveries] == INVALID_JSON
    assert {(d["verdict"], d["http_status"]) for d in deliveries} == {("rejected", 400)}
    for body in [b"[]", b"42", b'"pred_1"', b"null"]:
        problem = assert_problem(receiver.post(mint(), body), 422)
        assert problem["errors"][0]["field"] == "<root>"


def test_contract_violation_is_422_listing_field_paths(receiver: Receiver) -> None:
    body = prediction_body(status="done", usage={"credits_used": "lots"}, created_at="yesterday")
    problem = assert_problem(receiver.post(mint(), encode(body)), 422)
    fields = {error["field"] for error in problem["errors"]}
    assert fields == {"status", "usage.credits_used", "created_at"}
    for field in fields:
        assert field in problem["detail"]
    (delivery,) = receiver.deliveries()
    assert delivery["prediction_id"] == "pred_1"  # claimed id kept for the audit
    assert (delivery["verdict"], delivery["http_status"]) == ("rejected", 422)
    assert receiver.predictions() == []


def test_values_the_database_cannot_hold_are_422_naming_the_field(receiver: Receiver) -> None:
    cases = [
        (prediction_body(prediction_id="p" * 129), "id"),
        (prediction_body(response={"a": ["ok", "b\x00c"]}), "response.a[1]"),
        (prediction_body(response={"a\x00": 1}), "response.a\\u0000"),
        (prediction_body(usage={"element_type": "\x00"}), "usage.element_type"),
        (prediction_body(created_at="0001-01-01T00:30:00+01:00"), "created_at"),
        (prediction_body(completed_at="9999-12-31T23:59:59-14:00"), "completed_at"),
        (prediction_body(prediction_id="pred\x00nul", status="bogus"), "status"),
    ]
    for body, field in cases:
        problem = assert_problem(receiver.post_json(body), 422)
        assert field in {error["field"] for error in problem["errors"]}, (field, problem)
    # Parsed fine (the parser allows 1,024 levels) but too deep for the JSON columns.
    too_deep = (
        encode(prediction_body(response=None))[:-1] + b', "n": ' + b"[" * 300 + b"]" * 300 + b"}"
    )
    problem = assert_problem(receiver.post(receiver.token(), too_deep), 422, detail_contains="deep")
    assert receiver.predictions() == []
    deliveries = receiver.deliveries()
    assert [(d["verdict"], d["http_status"]) for d in deliveries] == [("rejected", 422)] * 8
    assert deliveries[0]["prediction_id"] is None  # a claimed id over 128 characters...
    assert deliveries[6]["prediction_id"] is None  # ...or with U+0000 is not kept


def test_edge_values_the_database_can_hold_are_stored(receiver: Receiver) -> None:
    deep: list[object] = []
    for _ in range(200):
        deep = [deep]
    bodies = [
        prediction_body(prediction_id="p" * 128),
        prediction_body(prediction_id="p_domain", domain="d" * 65),
        prediction_body(prediction_id="p_deep", response=deep),
        prediction_body(prediction_id="p_year_1", created_at="0001-01-01T00:00:00Z"),
    ]
    for index, body in enumerate(bodies):
        # One callback URL per prediction: a URL binds to the first prediction it stores.
        token = receiver.token(f"sub_edge_{index}")
        assert receiver.post_json(body, token=token).status_code == 200, body["id"]
    rows = {row["id"]: row for row in receiver.predictions()}
    assert len(rows) == 4
    assert rows["p_domain"]["domain"] is None  # too wide for the column...
    assert rows["p_domain"]["extra"]["domain"] == "d" * 65  # ...but kept verbatim


def test_prediction_id_contradicting_the_submission_is_409(receiver: Receiver) -> None:
    receiver.add_submission("sub_1", prediction_id="pred_recorded")
    response = receiver.post_json(prediction_body(prediction_id="pred_other"), token=mint("sub_1"))
    problem = assert_problem(response, 409, detail_contains="pred_recorded")
    assert problem["recorded_prediction_id"] == "pred_recorded"
    assert receiver.predictions() == []
    (delivery,) = receiver.deliveries()
    assert (delivery["verdict"], delivery["http_status"]) == ("rejected", 409)
    assert delivery["prediction_id"] == "pred_other"


# --- storage verdicts -----------------------------------------------------------------------


def test_submission_row_is_linked_and_schema_verdict_stored(receiver: Receiver) -> None:
    receiver.add_submission("sub_1", json_schema=INVOICE_SCHEMA)
    assert_ack(
        receiver.post_json(prediction_body("running"), token=mint("sub_1")),
        verdict="stored",
        status="running",
    )
    assert_ack(
        receiver.post_json(prediction_body("completed"), token=mint("sub_1")),
        verdict="updated",
        status="completed",
    )
    (row,) = receiver.predictions()
    assert row["schema_valid"] is False
    assert any("vendor" in message for message in row["schema_errors"])
    assert row["response"] == {"total": 42.5, "currency": "EUR"}  # kept although invalid
    assert row["domain"] == "document.invoice"
    submission = receiver.submission("sub_1")
    assert (submission["prediction_id"], submission["status"]) == ("pred_1", "completed")

    receiver.add_submission("sub_2", json_schema={"type": "object", "required": ["total"]})
    receiver.post_json(prediction_body(prediction_id="pred_2"), token=mint("sub_2"))
    assert receiver.predictions()[1]["schema_valid"] is True


def test_exact_duplicate_is_200_duplicate_and_changes_nothing(receiver: Receiver) -> None:
    body = prediction_body("completed")
    assert_ack(receiver.post_json(body), verdict="stored", status="completed")
    before = receiver.predictions()
    assert_ack(receiver.post_json(body), verdict="duplicate", status="completed", duplicate=True)
    assert receiver.predictions() == before
    assert [d["verdict"] for d in receiver.deliveries()] == ["stored", "duplicate"]


def test_status_moves_forward_and_a_late_older_one_is_200_stale(receiver: Receiver) -> None:
    assert_ack(
        receiver.post_json(prediction_body("completed")), verdict="stored", status="completed"
    )
    assert_ack(receiver.post_json(prediction_body("running")), verdict="stale", status="completed")
    assert_ack(receiver.post_json(prediction_body("failed")), verdict="stale", status="completed")
    (row,) = receiver.predictions()
    assert row["status"] == "completed" and row["response"] == {"total": 42.5, "currency": "EUR"}
    stale = receiver.deliveries()[1]
    assert (stale["verdict"], stale["http_status"]) == ("stale", 200)
    assert "running arrived after completed" in stale["reason"]

    for status, verdict in [
        ("enqueued", "stored"),
        ("pending", "updated"),
        ("running", "updated"),
        ("paused", "updated"),
        ("completed", "updated"),
    ]:
        response = receiver.post_json(
            prediction_body(status, prediction_id="pred_forward"),
            token=receiver.token("sub_forward"),
        )
        assert_ack(response, verdict=verdict, status=status)
    assert receiver.predictions()[1]["delivery_count"] == 5


def test_a_storage_failure_is_503_and_never_acknowledged(receiver: Receiver) -> None:
    with receiver.engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE prediction RENAME TO prediction_away"))
    try:
        response = receiver.post_json(prediction_body())
        problem = assert_problem(response, 503, detail_contains="retry")
        assert problem["type"].endswith("/storage-unavailable")
        assert response.headers["retry-after"] == "5"
    finally:
        with receiver.engine.begin() as connection:
            connection.execute(sa.text("ALTER TABLE prediction_away RENAME TO prediction"))
    assert receiver.deliveries() == []  # the failed batch left nothing behind
    assert_ack(receiver.post_json(prediction_body()), verdict="stored", status="completed")


# --- delivery log ---------------------------------------------------------------------------


def test_delivery_log_keeps_selected_headers_and_the_raw_body(receiver: Receiver) -> None:
    raw = encode(prediction_body()) + b"\n"
    headers = {
        "user-agent": "vlmrun/1.0",
        "authorization": "Bearer do-not-keep",
        "x-vlmrun-signature": "sha256=" + "0" * 64,
        "cookie": "a=b",
    }
    assert receiver.post(mint(), raw, headers).status_code == 200
    (delivery,) = receiver.deliveries()
    assert delivery["body"] == raw and delivery["body_truncated"] is False
    kept = delivery["headers"]
    assert kept["user-agent"] == "vlmrun/1.0"
    assert kept["content-type"] == "application/json"
    assert kept["content-length"] == str(len(raw))
    assert kept["x-vlmrun-signature"] == "sha256=" + "0" * 64
    assert "authorization" not in kept and "cookie" not in kept
    assert delivery["submission_id"] == "sub_1" and delivery["prediction_id"] == "pred_1"
    import hashlib

    assert delivery["body_sha256"] == hashlib.sha256(raw).hexdigest()


def test_delivery_body_is_capped(database_url: str) -> None:
    settings = receiver_settings(database_url, delivery_body_cap=64)
    with running_receiver(settings) as receiver:
        raw = encode(prediction_body(notes="n" * 500))
        assert receiver.post(mint(), raw).status_code == 200
        (delivery,) = receiver.deliveries()
        assert delivery["body"] == raw[:64] and delivery["body_truncated"] is True


def test_metrics_count_verdicts(database_url: str) -> None:
    captured: dict[str, Any] = {}

    def capture_state(app: Any) -> Any:
        async def wrapped(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                captured["state"] = scope["state"]["receiver"]
            await app(scope, receive, send)

        return wrapped

    with running_receiver(receiver_settings(database_url), wrap=capture_state) as receiver:
        receiver.post_json(prediction_body("running"))
        receiver.post_json(prediction_body("running"))
        receiver.post(mint(), b"{")
        receiver.post("bad-token", b"{}")
        state = captured["state"]
        assert isinstance(state, ReceiverState)
        registry: CollectorRegistry = state.metrics.registry

        def count(verdict: str) -> float | None:
            return registry.get_sample_value("vlmhooks_callbacks_total", {"verdict": verdict})

        assert (count("stored"), count("duplicate"), count("rejected")) == (1.0, 1.0, 2.0)
        assert registry.get_sample_value("vlmhooks_ingest_latency_seconds_count") == 2.0


def test_trailing_slash_is_a_problem_not_a_redirect(sqlite_url: str) -> None:
    import httpx

    from receiver.app import create_app
    from tests.servers import serve
    from vlmhooks.settings import Settings

    settings = Settings(database_url=sqlite_url, secret_keys=("k",), allow_anonymous_reads=True)
    with serve(create_app(settings)) as server:
        response = httpx.post(f"{server.url}/v1/callbacks/abc/", content=b"{}", timeout=10)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"

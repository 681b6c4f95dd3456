"""Integrity at the edges (issue 11), over real HTTP on a SQLite file and on PostgreSQL:
bindings between callback URLs and predictions, byte-identical redeliveries, exact numbers,
addressable ids, clock skew on tokens, and readiness while the database refuses writes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import quote

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from tests.receiver.callback_harness import (
    FROZEN_NOW,
    LOOKUP_KEY,
    Receiver,
    assert_ack,
    assert_problem,
    encode,
    mint,
    prediction_body,
    receiver_settings,
    running_receiver,
)
from vlmhooks.errors import PredictionConflict
from vlmhooks.ingest.prediction import validate_prediction
from vlmhooks.store.batch import apply_prediction_writes
from vlmhooks.store.records import DeliveryRecord, IngestOutcome, PredictionWrite, sha256_hex
from vlmhooks.store.tables import EVENT

AUTH = {"authorization": f"Bearer {LOOKUP_KEY}"}


def _events(receiver: Receiver) -> int:
    with receiver.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(EVENT)).scalar_one())


# --- 1, 2: who owns what ----------------------------------------------------------------------


def test_a_prediction_belongs_to_the_submission_that_first_stored_it(receiver: Receiver) -> None:
    running = prediction_body("running", prediction_id="pred_p")
    assert_ack(receiver.post_json(running, token=mint("sub_a")), verdict="stored", status="running")
    before = receiver.predictions()

    forged = prediction_body("completed", prediction_id="pred_p", response={"total": 0})
    problem = assert_problem(
        receiver.post_json(forged, token=mint("sub_b")), 409, detail_contains="sub_a"
    )
    assert problem["recorded_submission_id"] == "sub_a"
    assert receiver.predictions() == before  # nothing changed
    assert (receiver.deliveries()[-1]["verdict"], receiver.deliveries()[-1]["http_status"]) == (
        "rejected",
        409,
    )

    # The real completion, through the prediction's own URL, is stored as an update.
    completed = prediction_body("completed", prediction_id="pred_p")
    assert_ack(
        receiver.post_json(completed, token=mint("sub_a")), verdict="updated", status="completed"
    )


def test_a_callback_url_without_a_submission_row_binds_to_its_first_prediction(
    receiver: Receiver,
) -> None:
    token = mint("sub_minted_by_cli")  # as `vlm-receiver callback-url` mints for other clients
    first = prediction_body("completed", prediction_id="pred_first")
    assert_ack(receiver.post_json(first, token=token), verdict="stored", status="completed")

    second = prediction_body("completed", prediction_id="pred_second")
    problem = assert_problem(
        receiver.post_json(second, token=token), 409, detail_contains="pred_first"
    )
    assert problem["recorded_prediction_id"] == "pred_first"
    assert [row["id"] for row in receiver.predictions()] == ["pred_first"]
    # The bound prediction's own redelivery still passes.
    assert_ack(
        receiver.post_json(first, token=token),
        verdict="duplicate",
        status="completed",
        duplicate=True,
    )


# --- 4: byte-identical redeliveries -----------------------------------------------------------


@pytest.mark.parametrize("status", ["running", "completed"])
def test_an_identical_redelivery_is_a_duplicate_whatever_it_omits(
    receiver: Receiver, status: str
) -> None:
    body = prediction_body(status)
    del body["created_at"]  # the contract fills it in with "now"
    del body["usage"]
    raw = encode(body)
    token = receiver.token()
    assert_ack(receiver.post(token, raw), verdict="stored", status=status)
    (stored,) = receiver.predictions()
    for _ in range(2):
        assert_ack(receiver.post(token, raw), verdict="duplicate", status=status, duplicate=True)
    (row,) = receiver.predictions()
    assert row["created_at"] == stored["created_at"] and row["delivery_count"] == 1
    assert _events(receiver) == 1


# --- 5: numbers exactly as signed -------------------------------------------------------------


def test_numbers_are_stored_and_served_exactly_or_refused_naming_the_field(
    receiver: Receiver,
) -> None:
    refused = {
        "response.big": b'{"big": 18446744073709551616}',
        "response.items[1].pi": b'{"items": [1, {"pi": 3.14159265358979323846}]}',
        "response.huge": b'{"huge": 1e400}',
        "response.tiny": b'{"tiny": 1e-400}',
    }
    for index, (field, response) in enumerate(refused.items()):
        raw = b'{"id": "pred_n%d", "status": "completed", "response": %s}' % (index, response)
        problem = assert_problem(
            receiver.post(receiver.token(f"sub_n{index}"), raw), 422, detail_contains=field
        )
        assert [error["field"] for error in problem["errors"]] == [field]
    assert receiver.predictions() == []

    exact = (
        b'{"u64": 18446744073709551615, "i64": -9223372036854775808, "e": 1e5, '
        b'"d": 0.1, "trailing": 1.10, "long": 1234567890.12345, "id": "123e4567"}'
    )
    raw = b'{"id": "pred_exact", "status": "completed", "response": %s}' % exact
    assert_ack(
        receiver.post(receiver.token("sub_exact"), raw), verdict="stored", status="completed"
    )
    served = receiver.client.get("/v1/predictions/pred_exact", headers=AUTH)
    assert served.status_code == 200
    got = json.loads(served.content, parse_float=Decimal)["response"]
    assert got == json.loads(exact, parse_float=Decimal)


# --- 6: every stored id is addressable --------------------------------------------------------


def test_ids_are_readable_by_their_percent_encoded_form_or_refused(receiver: Receiver) -> None:
    slashed = prediction_body(prediction_id="pred/1")
    problem = assert_problem(
        receiver.post_json(slashed, token=mint("sub_slash")), 422, detail_contains="id"
    )
    assert [error["field"] for error in problem["errors"]] == ["id"]

    odd = "pred 1?x=1#frag%20ü\\"
    assert (
        receiver.post_json(prediction_body(prediction_id=odd), token=mint("sub_odd")).status_code
        == 200
    )
    assert [row["id"] for row in receiver.predictions()] == [odd]
    served = receiver.client.get(f"/v1/predictions/{quote(odd, safe='')}", headers=AUTH)
    assert served.status_code == 200, served.text
    assert served.json()["id"] == odd


# --- 13: clock skew between the minting and the verifying host -------------------------------


def test_a_token_from_a_host_whose_clock_is_ahead_is_accepted_within_the_skew(
    database_url: str,
) -> None:
    settings = receiver_settings(database_url)  # VLMHOOKS_CLOCK_SKEW defaults to 60 s
    with running_receiver(settings, clock=lambda: FROZEN_NOW) as receiver:
        ahead = mint("sub_ahead", at=FROZEN_NOW + 59.9)
        response = receiver.post_json(prediction_body(prediction_id="pred_ahead"), token=ahead)
        assert_ack(response, verdict="stored", status="completed")
        too_far = mint("sub_far", at=FROZEN_NOW + 62)
        far = receiver.post_json(prediction_body(prediction_id="pred_far"), token=too_far)
        assert_problem(far, 401, detail_contains="future")
    strict = receiver_settings(database_url, clock_skew=0)
    with running_receiver(strict, clock=lambda: FROZEN_NOW) as receiver:
        one_second = mint("sub_1s", at=FROZEN_NOW + 1)
        assert_problem(
            receiver.post_json(prediction_body(), token=one_second), 401, detail_contains="future"
        )


# --- 15: readiness while the database refuses writes -----------------------------------------


def test_readyz_is_503_while_the_database_refuses_writes(database_url: str) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        read_only_url = f"sqlite:///file:{url.database}?mode=ro&uri=true"
    else:
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(
                f'ALTER DATABASE "{url.database}" SET default_transaction_read_only = on'
            )
        read_only_url = database_url
    with running_receiver(receiver_settings(read_only_url)) as receiver:
        problem = assert_problem(
            receiver.client.get("/readyz"), 503, detail_contains="refuses writes"
        )
        assert problem["type"].endswith("/not-ready")
        # What readiness predicted: a callback cannot be stored.
        assert receiver.post_json(prediction_body()).status_code == 503
    if url.get_backend_name() != "sqlite":
        writable = {"options": "-c default_transaction_read_only=off"}
        with psycopg.connect(database_url, autocommit=True, **writable) as connection:
            connection.execute(
                f'ALTER DATABASE "{url.database}" RESET default_transaction_read_only'
            )
    with running_receiver(receiver_settings(database_url)) as receiver:
        assert receiver.client.get("/readyz").status_code == 200


# --- bindings made earlier in the same batch --------------------------------------------------


def test_bindings_made_earlier_in_one_batch_hold_for_later_writes(engine: Engine) -> None:
    def write(prediction_id: str, submission_id: str) -> PredictionWrite:
        prediction = validate_prediction(prediction_body(prediction_id=prediction_id))
        body = encode(prediction_body(prediction_id=prediction_id))
        return PredictionWrite(
            prediction=prediction,
            submission_id=submission_id,
            source="callback",
            received_at=datetime.now(UTC),
            delivery=DeliveryRecord(body_sha256=sha256_hex(body), body=body),
        )

    with engine.begin() as connection:
        results = apply_prediction_writes(
            connection, [write("p1", "s1"), write("p2", "s1"), write("p1", "s2")]
        )
    assert isinstance(results[0], IngestOutcome) and results[0].verdict == "stored"
    assert isinstance(results[1], PredictionConflict) and "bound to prediction p1" in str(
        results[1]
    )
    assert isinstance(results[2], PredictionConflict) and "belongs to submission s1" in str(
        results[2]
    )

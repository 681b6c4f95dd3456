"""Provider signatures on the callback route, over real HTTP on SQLite and PostgreSQL:
X-VLMRun-Signature and Standard Webhooks (v1 HMAC, v1a ed25519), replay, and malformed
headers that must be 401, never 500."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.receiver.callback_harness import (
    FROZEN_NOW,
    assert_ack,
    assert_problem,
    encode,
    prediction_body,
    receiver_settings,
    running_receiver,
)
from vlmhooks.trust.signatures import sign_standard_webhook, sign_vlmrun, standard_webhook_headers

VLMRUN_OLD, VLMRUN_NEW = "vlmrun-secret-old", "vlmrun-secret-new"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WHSEC_OTHER = "whsec_" + base64.b64encode(b"another-32-byte-hmac-key-0123456").decode()
NOW = int(FROZEN_NOW)


def _frozen() -> float:
    return FROZEN_NOW


# --- X-VLMRun-Signature ---------------------------------------------------------------------


def test_vlmrun_signature_good_missing_wrong_and_rotated(database_url: str) -> None:
    settings = receiver_settings(database_url, vlmrun_webhook_secrets=(VLMRUN_OLD, VLMRUN_NEW))
    with running_receiver(settings) as receiver:
        body = encode(prediction_body("running"))
        signed_new = {"x-vlmrun-signature": sign_vlmrun(VLMRUN_NEW, body)}
        assert_ack(
            receiver.post(receiver.token(), body, signed_new), verdict="stored", status="running"
        )

        completed = encode(prediction_body("completed"))
        signed_old = {"x-vlmrun-signature": sign_vlmrun(VLMRUN_OLD, completed)}
        assert_ack(
            receiver.post(receiver.token(), completed, signed_old),
            verdict="updated",
            status="completed",
        )

        assert_problem(receiver.post(receiver.token(), body), 401, detail_contains="missing")
        wrong = {"x-vlmrun-signature": sign_vlmrun("not-our-secret", body)}
        assert_problem(
            receiver.post(receiver.token(), body, wrong), 401, detail_contains="does not match"
        )
        # A signature over other bytes (the body was altered in transit) is refused too.
        altered = {"x-vlmrun-signature": sign_vlmrun(VLMRUN_NEW, completed)}
        assert_problem(receiver.post(receiver.token(), body, altered), 401)

        (row,) = receiver.predictions()
        assert row["status"] == "completed"
        verdicts = [(d["verdict"], d["http_status"]) for d in receiver.deliveries()]
        assert verdicts == [("stored", 200), ("updated", 200)] + [("rejected", 401)] * 3
        assert (
            receiver.deliveries()[0]["headers"]["x-vlmrun-signature"]
            == signed_new["x-vlmrun-signature"]
        )


def test_vlmrun_known_answer_passes_the_signature_step(database_url: str) -> None:
    secret = "It's a Secret to Everybody"
    settings = receiver_settings(database_url, vlmrun_webhook_secrets=(secret,))
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    with running_receiver(settings) as receiver:
        # Signed correctly but not JSON: the 400 proves the signature step passed first.
        response = receiver.post(
            receiver.token(), b"Hello, World!", {"x-vlmrun-signature": signature}
        )
        assert_problem(response, 400)
        tampered = receiver.post(
            receiver.token(), b"Hello, World?", {"x-vlmrun-signature": signature}
        )
        assert_problem(tampered, 401)


def test_malformed_vlmrun_signatures_are_401(database_url: str) -> None:
    settings = receiver_settings(database_url, vlmrun_webhook_secrets=(VLMRUN_NEW,))
    body = encode(prediction_body())
    good = sign_vlmrun(VLMRUN_NEW, body)
    malformed = [
        "garbage",
        "sha256=",
        "sha256=zz" + good[9:],
        good[:-1],
        "sha1=" + good[7:],
        good + ",",
        "sha256:" + good[7:],
        "SHA256=" + good[7:],
        "sha256=" + "0" * 64 + "0" * 64,
        "sha256=" + "0" * 64,
        "sha256=" + "a" * 64,
    ]
    with running_receiver(settings) as receiver:
        for header in malformed:
            response = receiver.post(receiver.token(), body, {"x-vlmrun-signature": header})
            assert_problem(response, 401)
        # The same header twice with different values is ambiguous.
        twice = receiver.client.post(
            f"/v1/callbacks/{receiver.token()}",
            content=body,
            headers=[
                ("content-type", "application/json"),
                ("x-vlmrun-signature", good),
                ("x-vlmrun-signature", sign_vlmrun("other", body)),
            ],
        )
        assert_problem(twice, 401, detail_contains="conflicting")
        non_utf8 = b'{"id": "\xff"}'
        response = receiver.post(receiver.token(), non_utf8, {"x-vlmrun-signature": good})
        assert_problem(response, 401)
        assert receiver.predictions() == []


# --- Standard Webhooks ----------------------------------------------------------------------


def test_standard_webhooks_known_answer_vector(database_url: str) -> None:
    settings = receiver_settings(database_url, standard_webhook_secrets=(WHSEC,))
    vector_time = 1614265330
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": str(vector_time),
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    with running_receiver(settings, clock=lambda: float(vector_time)) as receiver:
        # The published body is not a prediction: 422 means the signature was accepted.
        assert_problem(receiver.post(receiver.token(), b'{"test": 2432232314}', headers), 422)
        assert_problem(receiver.post(receiver.token(), b'{"test": 2432232315}', headers), 401)


def test_standard_webhooks_v1_rotation_and_several_signatures(database_url: str) -> None:
    settings = receiver_settings(database_url, standard_webhook_secrets=(WHSEC_OTHER, WHSEC))
    with running_receiver(settings, clock=_frozen) as receiver:
        body = encode(prediction_body("running"))
        headers = standard_webhook_headers(WHSEC, "msg_1", NOW, body)
        assert_ack(
            receiver.post(receiver.token(), body, headers), verdict="stored", status="running"
        )

        completed = encode(prediction_body("completed"))
        unknown = sign_standard_webhook(
            "whsec_" + base64.b64encode(b"x" * 24).decode(), "msg_2", NOW, completed
        )
        several = " ".join([unknown, sign_standard_webhook(WHSEC_OTHER, "msg_2", NOW, completed)])
        headers = {
            "webhook-id": "msg_2",
            "webhook-timestamp": str(NOW),
            "webhook-signature": several,
        }
        assert_ack(
            receiver.post(receiver.token(), completed, headers),
            verdict="updated",
            status="completed",
        )

        only_unknown = dict(headers, **{"webhook-id": "msg_3", "webhook-signature": unknown})
        assert_problem(receiver.post(receiver.token(), completed, only_unknown), 401)
        missing = {"webhook-id": "msg_4", "webhook-timestamp": str(NOW)}
        assert_problem(
            receiver.post(receiver.token(), completed, missing),
            401,
            detail_contains="webhook-signature",
        )
        delivery = receiver.deliveries()[0]
        assert delivery["headers"]["webhook-id"] == "msg_1"
        assert delivery["headers"]["webhook-timestamp"] == str(NOW)


def test_a_bad_entry_beside_a_valid_one_is_skipped_not_refused(database_url: str) -> None:
    settings = receiver_settings(database_url, standard_webhook_secrets=(WHSEC,))
    with running_receiver(settings, clock=_frozen) as receiver:
        for index, bad in enumerate(["v1,AAAA", "garbage"]):
            body = encode(prediction_body("running", prediction_id=f"pred_skip_{index}"))
            headers = standard_webhook_headers(WHSEC, f"msg_skip_{index}", NOW, body)
            headers["webhook-signature"] = bad + " " + headers["webhook-signature"]
            token = receiver.token(f"sub_skip_{index}")
            assert_ack(receiver.post(token, body, headers), verdict="stored", status="running")
            only_bad = dict(headers, **{"webhook-signature": bad})
            assert_problem(receiver.post(token, body, only_bad), 401)


def test_standard_webhooks_v1a_with_a_whpk_public_key(database_url: str) -> None:
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    whsk = "whsk_" + base64.b64encode(seed).decode()
    whpk = "whpk_" + base64.b64encode(public).decode()
    settings = receiver_settings(database_url, standard_webhook_secrets=(whpk,))
    with running_receiver(settings, clock=_frozen) as receiver:
        body = encode(prediction_body())
        headers = standard_webhook_headers(whsk, "msg_ed", NOW, body)
        assert headers["webhook-signature"].startswith("v1a,")
        assert_ack(
            receiver.post(receiver.token(), body, headers), verdict="stored", status="completed"
        )
        other = Ed25519PrivateKey.generate().private_bytes_raw()
        forged = standard_webhook_headers(
            "whsk_" + base64.b64encode(other).decode(), "msg_x", NOW, body
        )
        assert_problem(receiver.post(receiver.token(), body, forged), 401)


def test_standard_webhooks_tolerance_boundary(database_url: str) -> None:
    settings = receiver_settings(
        database_url, standard_webhook_secrets=(WHSEC,), signature_tolerance=300
    )
    with running_receiver(settings, clock=_frozen) as receiver:
        for n, (offset, accepted) in enumerate(
            [(-300, True), (300, True), (-301, False), (301, False)]
        ):
            body = encode(prediction_body(prediction_id=f"pred_{n}"))
            headers = standard_webhook_headers(WHSEC, f"msg_{n}", NOW + offset, body)
            response = receiver.post(receiver.token(f"sub_{n}"), body, headers)
            if accepted:
                assert response.status_code == 200, (offset, response.text)
            else:
                assert_problem(response, 401, detail_contains="300 s")
        assert len(receiver.predictions()) == 2


def test_standard_webhooks_replay_is_a_duplicate_only_with_the_same_body(
    database_url: str,
) -> None:
    settings = receiver_settings(database_url, standard_webhook_secrets=(WHSEC,))
    with running_receiver(settings, clock=_frozen) as receiver:
        running = encode(prediction_body("running"))
        headers = standard_webhook_headers(WHSEC, "msg_once", NOW, running)
        assert_ack(
            receiver.post(receiver.token(), running, headers), verdict="stored", status="running"
        )
        assert_ack(
            receiver.post(receiver.token(), running, headers),
            verdict="duplicate",
            status="running",
            duplicate=True,
        )
        # Same id, other (validly signed) content: refused and logged, never "duplicate".
        completed = encode(prediction_body("completed"))
        same_id = standard_webhook_headers(WHSEC, "msg_once", NOW, completed)
        problem = assert_problem(
            receiver.post(receiver.token(), completed, same_id), 409, detail_contains="msg_once"
        )
        assert problem["webhook_id"] == "msg_once"
        (row,) = receiver.predictions()
        assert (row["status"], row["delivery_count"]) == ("running", 1)
        verdicts = [(d["verdict"], d["http_status"]) for d in receiver.deliveries()]
        assert verdicts == [("stored", 200), ("replay", 200), ("rejected", 409)]

        # Once a newer message is stored, a replay of the older one is `stale`: what it
        # carried is not what is stored.
        new_headers = standard_webhook_headers(WHSEC, "msg_two", NOW, completed)
        assert_ack(
            receiver.post(receiver.token(), completed, new_headers),
            verdict="updated",
            status="completed",
        )
        assert_ack(
            receiver.post(receiver.token(), running, headers), verdict="stale", status="completed"
        )


def test_malformed_standard_webhook_headers_are_401(database_url: str) -> None:
    settings = receiver_settings(database_url, standard_webhook_secrets=(WHSEC,))
    body = encode(prediction_body())
    good = standard_webhook_headers(WHSEC, "msg_ok", NOW, body)
    signature = good["webhook-signature"]
    cases: list[dict[str, str | bytes]] = [
        {"webhook-signature": "garbage"},
        {"webhook-signature": "v1,!!!not-base64!!!"},
        {"webhook-signature": "v1," + signature[3:-4]},  # truncated base64
        {"webhook-signature": signature + ",extra"},
        {"webhook-signature": "v1,,"},
        {"webhook-signature": ",,,"},
        {"webhook-signature": ""},
        {"webhook-signature": "v2," + signature[3:]},
        {"webhook-signature": "v1," + base64.b64encode(b"short").decode()},
        {"webhook-timestamp": f"{NOW}.5"},
        {"webhook-timestamp": f"{NOW}e0"},
        {"webhook-timestamp": "-1"},
        {"webhook-timestamp": "9" * 40},
        {"webhook-timestamp": ""},
        {"webhook-id": ""},
        {"webhook-id": "msg.with.dots"},
        {"webhook-id": b"msg_\xff\xfe"},
        {"webhook-signature": b"v1,\xff\xfe"},
    ]
    with running_receiver(settings, clock=_frozen) as receiver:
        for case in cases:
            headers: dict[str, str | bytes] = {**good, **case}
            response = receiver.client.post(
                f"/v1/callbacks/{receiver.token()}",
                content=body,
                headers={"content-type": "application/json", **headers},
            )
            assert_problem(response, 401)
        non_utf8 = b'{"id": "\xff\xfe"}'
        response = receiver.post(
            receiver.token(), non_utf8, standard_webhook_headers(WHSEC, "msg_b", NOW, non_utf8)
        )
        assert_problem(response, 400)  # the signature verifies over raw bytes; JSON then fails
        forged = receiver.post(receiver.token(), non_utf8, good)
        assert_problem(forged, 401)
        assert receiver.predictions() == []
        assert {d["http_status"] for d in receiver.deliveries()} == {400, 401}


def test_both_schemes_configured_need_both(database_url: str) -> None:
    settings = receiver_settings(
        database_url, vlmrun_webhook_secrets=(VLMRUN_NEW,), standard_webhook_secrets=(WHSEC,)
    )
    with running_receiver(settings, clock=_frozen) as receiver:
        body = encode(prediction_body())
        standard = standard_webhook_headers(WHSEC, "msg_both", NOW, body)
        vlmrun = {"x-vlmrun-signature": sign_vlmrun(VLMRUN_NEW, body)}
        assert_problem(receiver.post(receiver.token(), body, standard), 401)
        assert_problem(receiver.post(receiver.token(), body, vlmrun), 401)
        assert_ack(
            receiver.post(receiver.token(), body, {**standard, **vlmrun}),
            verdict="stored",
            status="completed",
        )

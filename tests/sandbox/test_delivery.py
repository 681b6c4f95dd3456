"""Batch predictions end to end: the worker, signed callbacks to a real receiver on loopback,
retries with backoff, recorded attempts, and every callback fault mode.
"""

from __future__ import annotations

import base64
import itertools
import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from sandbox.delivery import DeliveryPolicy
from schemas.contract import PredictionResponse
from tests.sandbox.conftest import SandboxFactory
from tests.sandbox.harness import CaptureReceiver, png_b64, wait_attempts, wait_terminal
from vlmhooks.trust.signatures import verify_standard_webhook, verify_vlmrun_signature

VLMRUN_SECRET = "It's a Secret to Everybody"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _submit(
    client: httpx.Client, capture: CaptureReceiver, faults: str | None = None, **fields: Any
) -> dict[str, Any]:
    body = {
        "images": [png_b64()],
        "domain": "document.receipt",
        "batch": True,
        "callback_url": capture.callback_url,
        **fields,
    }
    headers = {"X-Sandbox-Faults": faults} if faults is not None else {}
    response = client.post("/image/generate", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_batch_is_enqueued_then_delivered_signed(
    sandbox: SandboxFactory, capture: CaptureReceiver
) -> None:
    with sandbox(
        vlmrun_webhook_secret=VLMRUN_SECRET, standard_webhook_secret=STANDARD_SECRET
    ) as client:
        created = _submit(client, capture)
        [call] = capture.wait_for(1)
        stored = wait_terminal(client, created["id"])
        [attempt] = wait_attempts(client, created["id"], 1)

    assert created["status"] == "enqueued"
    assert created["completed_at"] is None
    assert created["response"] is None
    assert created["usage"] == {"elements_processed": 1, "element_type": "image", "credits_used": 1}

    # The body is signed exactly as sent, both ways.
    verify_vlmrun_signature(call.body, call.headers["x-vlmrun-signature"], [VLMRUN_SECRET])
    verdict = verify_standard_webhook(call.body, call.headers, [STANDARD_SECRET], now=time.time())
    assert verdict.msg_id == f"msg_{created['id']}_completed"
    assert call.headers["content-type"] == "application/json"

    payload = PredictionResponse.model_validate_json(call.body)
    assert payload.id == created["id"]
    assert payload.status == "completed"
    assert payload.completed_at is not None
    assert payload.usage is not None and payload.usage.credits_used == 1
    assert payload.extra_fields == {"domain": "document.receipt"}
    assert call.json() == stored  # the callback carries what GET returns

    assert attempt["prediction_status"] == "completed"
    assert attempt["attempt"] == 1
    assert attempt["copy"] == 1
    assert attempt["status_code"] == 200
    assert attempt["ok"] is True
    assert attempt["error"] is None
    assert attempt["url"] == capture.callback_url
    assert attempt["headers"]["X-VLMRun-Signature"] == call.headers["x-vlmrun-signature"]
    assert attempt["headers"]["webhook-id"] == verdict.msg_id
    assert _at(attempt["started_at"]) <= _at(attempt["finished_at"])


def test_unsigned_without_secrets(sandbox: SandboxFactory, capture: CaptureReceiver) -> None:
    with sandbox() as client:
        _submit(client, capture)
        [call] = capture.wait_for(1)
    assert "x-vlmrun-signature" not in call.headers
    assert "webhook-signature" not in call.headers


def test_retry_after_receiver_500(sandbox: SandboxFactory, capture: CaptureReceiver) -> None:
    capture.fail_first = 1
    with sandbox(
        standard_webhook_secret=STANDARD_SECRET, max_attempts=3, backoff_base=0.1
    ) as client:
        created = _submit(client, capture)
        first, second = capture.wait_for(2)
        attempts = wait_attempts(client, created["id"], 2)
        time.sleep(0.3)  # a third attempt would have started by now
        assert len(client.get("/sandbox/deliveries").json()) == 2

    assert [(a["attempt"], a["status_code"], a["ok"]) for a in attempts] == [
        (1, 500, False),
        (2, 200, True),
    ]
    assert attempts[0]["error"] == "HTTP 500"
    assert second.body == first.body
    # A retry is the same message: same webhook-id, freshly signed.
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    verify_standard_webhook(second.body, second.headers, [STANDARD_SECRET], now=time.time())
    assert _at(attempts[1]["started_at"]) - _at(attempts[0]["finished_at"]) >= 0.09


def test_attempts_exhausted_with_exponential_backoff(
    sandbox: SandboxFactory, capture: CaptureReceiver
) -> None:
    capture.fail_first = 100
    with sandbox(max_attempts=4, backoff_base=0.05) as client:
        created = _submit(client, capture)
        attempts = wait_attempts(client, created["id"], 4)
        time.sleep(0.5)
        final = client.get("/sandbox/deliveries", params={"prediction_id": created["id"]}).json()
        stored = client.get(f"/predictions/{created['id']}").json()

    assert final == attempts
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4]
    assert all(a["status_code"] == 500 and not a["ok"] for a in attempts)
    assert len(capture.calls) == 4
    gaps = [
        _at(later["started_at"]) - _at(earlier["finished_at"])
        for earlier, later in itertools.pairwise(attempts)
    ]
    # 0.05, 0.1, 0.2 s: doubling, not linear (which would make the last gap 0.15 s).
    for gap, expected in zip(gaps, [0.05, 0.1, 0.2], strict=True):
        assert expected - 0.01 <= gap < expected + 0.5
    assert stored["status"] == "completed"  # a failed delivery does not touch the prediction


@pytest.mark.parametrize(
    ("policy", "waits"),
    [
        (DeliveryPolicy(), [1.0, 2.0, 4.0, 8.0, 16.0]),
        (DeliveryPolicy(backoff_base=0.05), [0.05, 0.1, 0.2, 0.4, 0.8]),
        (DeliveryPolicy(backoff_base=0.0), [0.0] * 5),
        (DeliveryPolicy(backoff_base=1.0, backoff_cap=5.0), [1.0, 2.0, 4.0, 5.0, 5.0]),
    ],
)
def test_backoff_doubles_without_jitter(policy: DeliveryPolicy, waits: list[float]) -> None:
    """Exact waits after failed attempts 1..5: the real service documents no jitter."""
    assert [policy.backoff(failed) for failed in range(1, 6)] == waits
    assert DeliveryPolicy().backoff(20) == 2.0**19  # no cap unless one is set


def test_default_is_two_attempts(sandbox: SandboxFactory, capture: CaptureReceiver) -> None:
    capture.fail_first = 100
    with sandbox() as client:
        created = _submit(client, capture)
        wait_attempts(client, created["id"], 2)
        time.sleep(0.2)
        attempts = client.get("/sandbox/deliveries").json()
    assert [a["attempt"] for a in attempts] == [1, 2]


def test_transport_errors_and_timeouts_are_failed_attempts(
    sandbox: SandboxFactory, capture: CaptureReceiver
) -> None:
    capture.slow_count, capture.slow_first = 1, 0.4
    with sandbox(delivery_timeout=0.2) as client:
        slow = _submit(client, capture)
        refused = _submit(client, capture, callback_url="http://127.0.0.1:9/callback")
        slow_attempts = wait_attempts(client, slow["id"], 2)
        refused_attempts = wait_attempts(client, refused["id"], 2)
    assert slow_attempts[0]["status_code"] is None
    assert slow_attempts[0]["error"] == "Timeout: no response within 0.2 s"
    assert slow_attempts[1]["ok"] is True
    assert [a["error"].split(":")[0] for a in refused_attempts] == ["ConnectError"] * 2


def test_delivery_concurrency_bounds_posts_in_flight_without_eating_timeouts(
    sandbox: SandboxFactory, capture: CaptureReceiver
) -> None:
    capture.slow_count, capture.slow_first = 4, 0.3
    with sandbox(delivery_concurrency=1, delivery_timeout=0.6, concurrency=4) as client:
        ids = [_submit(client, capture)["id"] for _ in range(4)]
        capture.wait_for(4)
        attempts = [wait_attempts(client, prediction_id, 1)[0] for prediction_id in ids]
    assert capture.max_in_flight == 1
    # The last one waited ~0.9 s for its slot, over the 0.6 s timeout, yet none timed out:
    # the wait is not part of an attempt.
    assert all(attempt["ok"] for attempt in attempts)
    assert len(capture.calls) == 4


def test_failed_prediction_is_delivered(sandbox: SandboxFactory, capture: CaptureReceiver) -> None:
    undecodable = base64.b64encode(b"no picture here").decode()
    with sandbox() as client:
        faulted = _submit(client, capture, faults="fail")
        broken = _submit(client, capture, images=[png_b64(), undecodable])
        calls = capture.wait_for(2)
        faulted_stored = wait_terminal(client, faulted["id"])
        broken_stored = wait_terminal(client, broken["id"])
    by_id = {call.json()["id"]: call.json() for call in calls}
    assert by_id[faulted["id"]] == faulted_stored
    assert faulted_stored["status"] == "failed"
    assert "made to fail" in faulted_stored["response"]["error"]
    assert faulted_stored["completed_at"] is not None
    assert by_id[broken["id"]] == broken_stored
    assert broken_stored["status"] == "failed"
    assert "image #1" in broken_stored["response"]["error"]


def test_duplicate(sandbox: SandboxFactory, capture: CaptureReceiver) -> None:
    with sandbox() as client:
        created = _submit(client, capture, faults="duplicate=3")
        calls = capture.wait_for(3)
        attempts = wait_attempts(client, created["id"], 3)
        time.sleep(0.2)
    assert len(capture.calls) == 3
    assert len({call.body for call in calls}) == 1
    assert [a["copy"] for a in attempts] == [1, 2, 3]
    assert {a["webhook_id"] for a in attempts} == {f"msg_{created['id']}_completed"}


def test_out_of_order(sandbox: SandboxFactory, capture: CaptureReceiver) -> None:
    with sandbox(vlmrun_webhook_secret=VLMRUN_SECRET) as client:
        created = _submit(client, capture, faults="out_of_order")
        completed, running = capture.wait_for(2)
        attempts = wait_attempts(client, created["id"], 2)
    assert completed.json()["status"] == "completed"
    assert running.json()["status"] == "running"
    assert running.json()["response"] is None
    assert running.json()["completed_at"] is None
    verify_vlmrun_signature(running.body, running.headers["x-vlmrun-signature"], [VLMRUN_SECRET])
    assert [a["prediction_status"] for a in attempts] == ["completed", "running"]
    assert attempts[0]["webhook_id"] != attempts[1]["webhook_id"]


def test_deliver_intermediate_sends_running_first(
    sandbox: SandboxFactory, capture: CaptureReceiver
) -> None:
    with sandbox(deliver_intermediate=True, processing_delay=0.1) as client:
        _submit(client, capture)
        capture.wait_for(2)
    assert capture.statuses() == ["running", "completed"]


def test_drop_still_completes(sandbox: SandboxFactory, capture: CaptureReceiver) -> None:
    with sandbox() as client:
        dropped = _submit(client, capture, faults="drop")
        stored = wait_terminal(client, dropped["id"])
        # A delivered sibling shows the sandbox would have had time to send the dropped one.
        _submit(client, capture)
        capture.wait_for(1)
        time.sleep(0.2)
        attempts = client.get("/sandbox/deliveries", params={"prediction_id": dropped["id"]})
    assert stored["status"] == "completed"
    assert stored["response"] is not None
    assert [call.json()["id"] for call in capture.calls] != [dropped["id"]]
    assert len(capture.calls) == 1
    assert attempts.json() == []


def test_delay(sandbox: SandboxFactory, capture: CaptureReceiver) -> None:
    with sandbox() as client:
        created = _submit(client, capture, faults="delay=0.5")
        stored = wait_terminal(client, created["id"])
        [attempt] = wait_attempts(client, created["id"], 1, timeout=3)
    assert _at(attempt["started_at"]) - _at(stored["completed_at"]) >= 0.49


def test_sandbox_default_faults_and_header_override(
    sandbox: SandboxFactory, capture: CaptureReceiver
) -> None:
    with sandbox(faults="drop") as client:
        dropped = _submit(client, capture)
        delivered = _submit(client, capture, faults="none")
        [call] = capture.wait_for(1)
        wait_terminal(client, dropped["id"])
        time.sleep(0.2)
    assert call.json()["id"] == delivered["id"]
    assert len(capture.calls) == 1


def test_many_batch_predictions_all_delivered(
    sandbox: SandboxFactory, capture: CaptureReceiver
) -> None:
    with sandbox(concurrency=3) as client:
        ids = {_submit(client, capture)["id"] for _ in range(12)}
        calls = capture.wait_for(12)
    assert {call.json()["id"] for call in calls} == ids
    assert all(call.json()["status"] == "completed" for call in calls)

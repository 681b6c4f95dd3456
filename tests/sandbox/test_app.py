"""The sandbox's HTTP API over real loopback: validation, auth, sync predictions, idempotency,
listing, generate faults and what the public SDK sends.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from sandbox import SandboxConfig, create_sandbox_app
from schemas.contract import PredictionResponse
from tests.sandbox.conftest import SandboxFactory
from tests.sandbox.harness import FAST, CaptureReceiver, png_b64, png_bytes, wait_terminal
from tests.servers import serve


def _request(**fields: object) -> dict[str, object]:
    return {"images": [png_b64()], "domain": "document.invoice", **fields}


def test_validation_errors_list_fields(sandbox: SandboxFactory) -> None:
    with sandbox() as client:
        response = client.post(
            "/image/generate",
            json={"images": [], "domain": "document.novel", "model": "vlm-2", "batch": "maybe"},
        )
    assert response.status_code == 422
    errors = response.json()["detail"]
    by_loc = {tuple(error["loc"]): error for error in errors}
    assert set(by_loc) == {
        ("body", "images"),
        ("body", "domain"),
        ("body", "model"),
        ("body", "batch"),
    }
    assert by_loc[("body", "images")]["type"] == "too_short"
    assert by_loc[("body", "domain")]["type"] == "enum"
    assert all(isinstance(error["msg"], str) and error["msg"] for error in errors)


def test_missing_fields_and_bad_image_value(sandbox: SandboxFactory) -> None:
    with sandbox() as client:
        missing = client.post("/image/generate", json={})
        bad_image = client.post("/image/generate", json=_request(images=["not an image!"]))
    assert {tuple(e["loc"]) for e in missing.json()["detail"]} == {
        ("body", "images"),
        ("body", "domain"),
    }
    assert [e["loc"] for e in bad_image.json()["detail"]] == [["body", "images"]]


def test_invalid_json_is_422(sandbox: SandboxFactory) -> None:
    with sandbox() as client:
        response = client.post(
            "/image/generate", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_body_cap_is_413(sandbox: SandboxFactory) -> None:
    with sandbox(max_request_bytes=2000) as client:
        response = client.post("/image/generate", json=_request(images=["A" * 4000]))
    assert response.status_code == 413
    assert "2000 bytes" in response.json()["detail"]


def test_api_keys(sandbox: SandboxFactory) -> None:
    with sandbox(api_keys="old-key, new-key") as client:
        missing = client.post("/image/generate", json=_request())
        wrong = client.post(
            "/image/generate", json=_request(), headers={"Authorization": "Bearer nope"}
        )
        basic = client.get("/predictions", headers={"Authorization": "Basic new-key"})
        right = client.post(
            "/image/generate", json=_request(), headers={"Authorization": "Bearer new-key"}
        )
        older = client.get("/predictions", headers={"Authorization": "bearer old-key"})
        unknown = client.get("/predictions/x", headers={"Authorization": "Bearer nope"})
        health = client.get("/health")
    assert missing.status_code == 401
    assert missing.json() == {"detail": "missing bearer API key"}
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "invalid API key"}
    assert basic.status_code == 401
    assert unknown.status_code == 401  # auth is checked before existence
    assert right.status_code == 201
    assert older.status_code == 200
    assert [p["id"] for p in older.json()] == [right.json()["id"]]
    assert health.status_code == 200


def test_sync_prediction_completes(sandbox: SandboxFactory) -> None:
    with sandbox() as client:
        response = client.post("/image/generate", json=_request(images=[png_b64(), png_b64()]))
        assert response.status_code == 201
        body = response.json()
        fetched = client.get(f"/predictions/{body['id']}")
    prediction = PredictionResponse.model_validate(body)
    assert prediction.status == "completed"
    assert prediction.completed_at is not None
    assert prediction.completed_at >= prediction.created_at
    assert body["usage"] == {"elements_processed": 2, "element_type": "image", "credits_used": 2}
    assert body["domain"] == "document.invoice"
    assert body["response"]["_sandbox"]["domain"] == "document.invoice"
    assert fetched.json() == body


def test_sync_responses_are_deterministic(sandbox: SandboxFactory) -> None:
    red, blue = png_b64((200, 30, 30)), png_b64((20, 40, 220))
    with sandbox() as client:
        first = client.post("/image/generate", json=_request(images=[red])).json()
        second = client.post("/image/generate", json=_request(images=[red])).json()
        other = client.post("/image/generate", json=_request(images=[blue])).json()
        schema = {
            "type": "object",
            "properties": {"total": {"type": "number"}, "vendor": {"type": "string"}},
            "required": ["total", "vendor"],
        }
        shaped = client.post(
            "/image/generate", json=_request(images=[red], config={"json_schema": schema})
        ).json()
    assert first["id"] != second["id"]
    assert first["response"] == second["response"]
    assert other["response"] != first["response"]
    assert isinstance(shaped["response"]["total"], float | int)
    assert isinstance(shaped["response"]["vendor"], str)


def test_sync_fail_fault_is_a_failed_prediction(sandbox: SandboxFactory) -> None:
    with sandbox() as client:
        response = client.post(
            "/image/generate", json=_request(), headers={"X-Sandbox-Faults": "fail"}
        )
    assert response.status_code == 201
    assert response.json()["status"] == "failed"
    assert "made to fail" in response.json()["response"]["error"]
    assert response.json()["completed_at"] is not None


def test_undecodable_image_sync_is_422_naming_the_image(sandbox: SandboxFactory) -> None:
    not_png = base64.b64encode(b"these bytes are no picture").decode()
    with sandbox() as client:
        response = client.post("/image/generate", json=_request(images=[png_b64(), not_png]))
        listed = client.get("/predictions").json()
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "images", 1]
    assert error["type"] == "prediction_failed"
    assert "image #1" in error["msg"]
    assert listed == []  # a rejected request leaves nothing behind


def test_loopback_image_url_is_fetched(sandbox: SandboxFactory, capture: CaptureReceiver) -> None:
    with sandbox() as client:
        by_url = client.post("/image/generate", json=_request(images=[f"{capture.url}/image.png"]))
        inline = client.post("/image/generate", json=_request(images=[png_b64()]))
        gone = client.post("/image/generate", json=_request(images=[f"{capture.url}/missing.png"]))
        remote = client.post("/image/generate", json=_request(images=["https://example.com/a.png"]))
    assert by_url.status_code == 201
    assert by_url.json()["response"] == inline.json()["response"]
    assert gone.status_code == 422
    assert "HTTP 404" in gone.json()["detail"][0]["msg"]
    assert remote.status_code == 422
    assert "no network" in remote.json()["detail"][0]["msg"]


def test_request_id_is_the_idempotency_key(sandbox: SandboxFactory) -> None:
    request_id = str(uuid.uuid4())
    with sandbox() as client:
        first = client.post("/image/generate", json=_request(id=request_id, batch=True))
        retry = client.post("/image/generate", json=_request(id=request_id, batch=True))
        reused = client.post(
            "/image/generate", json=_request(id=request_id, batch=True, domain="image.caption")
        )
        sync_id = str(uuid.uuid4())
        sync_first = client.post("/image/generate", json=_request(id=sync_id))
        sync_retry = client.post("/image/generate", json=_request(id=sync_id))
        wait_terminal(client, first.json()["id"])
        listed = client.get("/predictions", params={"limit": 100}).json()
    assert first.status_code == retry.status_code == 201
    assert retry.json()["id"] == first.json()["id"]
    assert reused.status_code == 409
    assert request_id in reused.json()["detail"]
    assert sync_retry.json() == sync_first.json()
    assert sorted(p["id"] for p in listed) == sorted([first.json()["id"], sync_first.json()["id"]])


def test_a_crashing_predictor_fails_the_prediction_sync_and_batch(
    capture: CaptureReceiver,
) -> None:
    class Crashing:
        def predict(self, images: Sequence[bytes], domain: str, config: Any) -> dict[str, Any]:
            raise RuntimeError("model fell over")

    app = create_sandbox_app(SandboxConfig(**FAST), predictor=Crashing())
    with serve(app) as server, httpx.Client(base_url=f"{server.url}/v1") as client:
        sync = client.post("/image/generate", json=_request())
        batch = client.post(
            "/image/generate", json=_request(batch=True, callback_url=capture.callback_url)
        )
        stored = wait_terminal(client, batch.json()["id"])
        [call] = capture.wait_for(1)
    assert sync.status_code == 201
    assert sync.json()["status"] == "failed"
    assert "model fell over" in sync.json()["response"]["error"]
    assert stored["status"] == "failed"
    assert "model fell over" in stored["response"]["error"]
    assert call.json() == stored


def test_a_sandbox_bug_is_a_json_500() -> None:
    class Unserializable:
        def predict(self, images: Sequence[bytes], domain: str, config: Any) -> dict[str, Any]:
            return {"not json": object()}

    app = create_sandbox_app(SandboxConfig(**FAST), predictor=Unserializable())
    with serve(app) as server:
        response = httpx.post(f"{server.url}/v1/image/generate", json=_request(), timeout=10)
    assert response.status_code == 500
    assert response.json() == {"detail": "internal sandbox error; see the server log"}


def test_get_unknown_is_404_and_every_error_is_json(sandbox: SandboxFactory) -> None:
    with sandbox() as client:
        unknown = client.get("/predictions/no-such-id")
        no_route = client.get("/nowhere")
        wrong_method = client.get("/image/generate")
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "prediction 'no-such-id' not found"}
    assert no_route.status_code == 404
    assert no_route.json() == {"detail": "Not Found"}
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"detail": "Method Not Allowed"}


def test_list_pages_newest_first(sandbox: SandboxFactory) -> None:
    with sandbox() as client:
        ids = [client.post("/image/generate", json=_request()).json()["id"] for _ in range(3)]
        default = client.get("/predictions").json()
        page = client.get("/predictions", params={"skip": 1, "limit": 1}).json()
        past_end = client.get("/predictions", params={"skip": 5}).json()
        zero = client.get("/predictions", params={"limit": 0})
        text = client.get("/predictions", params={"skip": "x"})
    assert [p["id"] for p in default] == ids[::-1]
    assert [p["id"] for p in page] == [ids[1]]
    assert past_end == []
    assert zero.status_code == 422
    assert zero.json()["detail"][0]["loc"] == ["query", "limit"]
    assert text.status_code == 422
    assert text.json()["detail"][0]["loc"] == ["query", "skip"]


def test_generate_faults_per_request_id(sandbox: SandboxFactory) -> None:
    faults = {"X-Sandbox-Faults": "generate_503=2,generate_429=1,retry_after=3"}
    request = _request(id="req-flaky")
    with sandbox() as client:
        answers = [client.post("/image/generate", json=request, headers=faults) for _ in range(4)]
        # Another request id has its own count.
        other = client.post("/image/generate", json=_request(id="req-other"), headers=faults)
    assert [a.status_code for a in answers] == [503, 503, 429, 201]
    assert all(a.headers["Retry-After"] == "3" for a in answers[:3])
    assert "sandbox fault injection" in answers[0].json()["detail"]
    assert "rate limit" in answers[2].json()["detail"]
    assert other.status_code == 503


def test_generate_faults_per_sandbox_count_every_call(sandbox: SandboxFactory) -> None:
    with sandbox(faults="generate_429=2") as client:
        first = client.post("/image/generate", json=_request())
        second = client.post("/image/generate", json=_request())
        third = client.post("/image/generate", json=_request())
        # A request's own header replaces the sandbox default.
        with_header = client.post(
            "/image/generate", json=_request(), headers={"X-Sandbox-Faults": "generate_503=1"}
        )
    assert [first.status_code, second.status_code, third.status_code] == [429, 429, 201]
    assert first.headers["Retry-After"] == "1"
    assert with_header.status_code == 503


def test_bad_fault_header_is_400(sandbox: SandboxFactory) -> None:
    with sandbox() as client:
        response = client.post(
            "/image/generate", json=_request(), headers={"X-Sandbox-Faults": "drop,explode=1"}
        )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("X-Sandbox-Faults: unknown fault 'explode'")


def test_what_the_public_sdk_sends(sandbox: SandboxFactory) -> None:
    """The SDK posts `callback_url: null`, a full config dump and JPEG data URLs, and reads
    `/health` as a plain 200.
    """
    jpeg = png_bytes()  # the bytes' format is sniffed from content, the label is a hint
    body = {
        "model": "vlm-1",
        "images": ["data:image/jpeg;base64," + base64.b64encode(jpeg).decode()],
        "domain": "image.caption",
        "batch": False,
        "callback_url": None,
        "config": {
            "detail": "auto",
            "json_schema": None,
            "confidence": False,
            "grounding": False,
            "gql_stmt": None,
        },
        "metadata": {"environment": "dev", "session_id": None, "allow_training": True},
    }
    with httpx.Client(timeout=10) as plain, sandbox() as client:
        created = client.post("/image/generate", json=body)
        health = plain.get(f"{client.base_url}health")
        got = client.get(f"predictions/{created.json()['id']}")
    assert created.status_code == 201
    assert created.json()["status"] == "completed"
    assert health.status_code == 200
    assert got.json()["id"] == created.json()["id"]

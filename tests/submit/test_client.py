"""The API clients over httpx.MockTransport: error mapping, retries, the reused request id."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from schemas.contract import PredictionRequest
from schemas.enums import Domain, Status
from submit.client import AsyncVlmRunClient, ReceiverClient, VlmRunClient
from submit.errors import (
    AuthenticationError,
    BadRequest,
    ConfigError,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    UnexpectedResponse,
)
from submit.retry import RetryPolicy

# A 1x1 PNG.
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
    "nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
)
BASE = "http://api.test/v1"

Handler = Callable[[httpx.Request], httpx.Response]


def prediction(request_body: dict[str, object], status: str = "enqueued") -> dict[str, object]:
    return {
        "id": f"pred-{request_body['id']}",
        "created_at": "2026-01-01T00:00:00Z",
        "completed_at": None,
        "response": None,
        "status": status,
        "usage": {"elements_processed": 1, "element_type": "image", "credits_used": 1},
    }


class Recorder:
    """A scripted API: answers come from `script` in turn; every request is kept."""

    def __init__(self, *script: Callable[[httpx.Request], httpx.Response]) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.script[min(len(self.requests), len(self.script)) - 1](request)

    def bodies(self) -> list[dict[str, object]]:
        return [json.loads(r.content) for r in self.requests]


def created(request: httpx.Request) -> httpx.Response:
    return httpx.Response(201, json=prediction(json.loads(request.content)))


def status(code: int, headers: dict[str, str] | None = None, **body: object) -> Handler:
    return lambda _request: httpx.Response(code, json=body or None, headers=headers)


def make_client(api: Recorder, sleeps: list[float], **kwargs: object) -> VlmRunClient:
    policy = RetryPolicy(max_attempts=4, base_delay=0.25, random=lambda: 1.0)
    return VlmRunClient(
        "sk-test",
        BASE,
        retry=kwargs.pop("retry", policy),  # type: ignore[arg-type]
        transport=httpx.MockTransport(api),
        sleep=sleeps.append,
    )


def a_request(**overrides: object) -> PredictionRequest:
    return PredictionRequest(
        images=[f"data:image/png;base64,{PNG_B64}"],
        domain=Domain.IMAGE_CAPTION,
        batch=True,
        callback_url="https://hooks.test/v1/callbacks/tok",
        **overrides,
    )


def test_generate_posts_the_request_with_bearer_key() -> None:
    api = Recorder(created)
    sleeps: list[float] = []
    with make_client(api, sleeps) as client:
        response = client.generate(a_request())
    (sent,) = api.requests
    assert sent.method == "POST"
    assert str(sent.url) == f"{BASE}/image/generate"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.headers["content-type"] == "application/json"
    body = api.bodies()[0]
    assert body["domain"] == "image.caption"
    assert body["batch"] is True
    assert body["callback_url"] == "https://hooks.test/v1/callbacks/tok"
    assert response.status is Status.ENQUEUED
    assert response.id == f"pred-{body['id']}"
    assert sleeps == []


def test_429_is_retried_after_the_servers_retry_after_and_keeps_the_request_id() -> None:
    api = Recorder(
        status(429, {"Retry-After": "3"}, detail="too many"),
        status(429, {"Retry-After": "1.5"}, detail="too many"),
        created,
    )
    sleeps: list[float] = []
    response = make_client(api, sleeps).generate(a_request())
    assert sleeps == [3.0, 1.5]
    ids = {body["id"] for body in api.bodies()}
    assert len(api.requests) == 3
    assert len(ids) == 1, "a retried POST must carry the same request id"
    assert response.id == f"pred-{ids.pop()}"
    assert len({r.content for r in api.requests}) == 1


def test_503_with_http_date_retry_after_is_honored() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    api = Recorder(status(503, {"Retry-After": when}, detail="maintenance"), created)
    sleeps: list[float] = []
    make_client(api, sleeps).generate(a_request())
    assert len(sleeps) == 1
    assert 17.0 <= sleeps[0] <= 20.0


def test_5xx_without_retry_after_uses_exponential_backoff_then_gives_up() -> None:
    api = Recorder(status(502, message="bad gateway"))
    sleeps: list[float] = []
    with pytest.raises(ServerError) as caught:
        make_client(api, sleeps).generate(a_request())
    assert sleeps == [0.25, 0.5, 1.0]  # random() pinned to 1.0: the jitter's upper bound
    assert len(api.requests) == 4
    assert caught.value.status_code == 502
    assert "bad gateway" in str(caught.value)


def test_400_is_not_retried_and_carries_the_apis_message() -> None:
    api = Recorder(status(400, detail="images[0] is not an image"))
    sleeps: list[float] = []
    with pytest.raises(BadRequest, match=r"HTTP 400: images\[0\] is not an image"):
        make_client(api, sleeps).generate(a_request())
    assert len(api.requests) == 1
    assert sleeps == []


def test_422_field_errors_are_listed() -> None:
    api = Recorder(
        status(
            422,
            detail=[
                {"loc": ["body", "domain"], "msg": "Input should be 'document.ocr', ..."},
                {"loc": ["body", "images"], "msg": "Field required"},
            ],
        )
    )
    with pytest.raises(BadRequest) as caught:
        make_client(api, []).generate(a_request())
    assert "body.domain: Input should be" in caught.value.message
    assert "body.images: Field required" in caught.value.message


def test_401_maps_to_authentication_error_naming_the_env_var() -> None:
    api = Recorder(status(401, detail="Invalid API key"))
    with pytest.raises(AuthenticationError) as caught:
        make_client(api, []).generate(a_request())
    assert len(api.requests) == 1
    assert "VLMRUN_API_KEY" in str(caught.value)
    assert "Invalid API key" in str(caught.value)


def test_non_json_error_body_falls_back_to_text() -> None:
    api = Recorder(lambda _r: httpx.Response(418, text="I'm a teapot, not an API"))
    with pytest.raises(BadRequest, match="teapot"):
        make_client(api, []).generate(a_request())


def test_connect_errors_are_retried_then_mapped() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    api = Recorder(refuse)
    sleeps: list[float] = []
    with pytest.raises(TransportError, match=r"cannot reach http://api\.test/v1") as caught:
        make_client(api, sleeps).generate(a_request())
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert caught.value.status_code is None
    assert len(sleeps) == 3


def test_timeout_is_retried_and_then_succeeds() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    api = Recorder(slow, created)
    sleeps: list[float] = []
    make_client(api, sleeps).generate(a_request())
    assert sleeps == [0.25]
    assert len({body["id"] for body in api.bodies()}) == 1


def test_a_success_that_is_not_a_prediction_is_unexpected() -> None:
    api = Recorder(status(201, hello="world"))
    with pytest.raises(UnexpectedResponse, match="not a prediction"):
        make_client(api, []).generate(a_request())
    assert len(api.requests) == 1


def test_retry_after_longer_than_the_policy_allows_gives_up_with_it() -> None:
    api = Recorder(status(429, {"Retry-After": "3600"}, detail="quota"))
    policy = RetryPolicy(max_retry_after=60.0)
    with pytest.raises(RateLimited) as caught:
        make_client(api, [], retry=policy).generate(a_request())
    assert caught.value.retry_after == 3600.0
    assert len(api.requests) == 1


def test_get_prediction_quotes_the_id_and_maps_404() -> None:
    api = Recorder(status(404, detail="Prediction not found"))
    with pytest.raises(NotFound, match="Prediction not found"):
        make_client(api, []).get_prediction("a/b c")
    assert api.requests[0].url.raw_path == b"/v1/predictions/a%2Fb%20c"


def test_health_returns_the_json_object() -> None:
    api = Recorder(status(200, status="ok"))
    assert make_client(api, []).health() == {"status": "ok"}
    assert api.requests[0].url.path == "/v1/health"


def test_key_and_base_url_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLMRUN_API_KEY", "sk-env")
    monkeypatch.setenv("VLMRUN_BASE_URL", "http://sandbox.test:9000/v1/")
    api = Recorder(status(200, status="ok"))
    client = VlmRunClient(transport=httpx.MockTransport(api))
    client.health()
    assert str(api.requests[0].url) == "http://sandbox.test:9000/v1/health"
    assert api.requests[0].headers["authorization"] == "Bearer sk-env"
    assert "sk-env" not in repr(client)


def test_default_base_url_is_the_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLMRUN_BASE_URL", raising=False)
    assert VlmRunClient("sk").base_url == "https://api.vlm.run/v1"


def test_missing_key_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLMRUN_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="VLMRUN_API_KEY is not set"):
        VlmRunClient()


def test_non_http_base_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="VLMRUN_BASE_URL must be an http"):
        VlmRunClient("sk", "ftp://example.com")


@pytest.mark.parametrize(
    "url", ["api.vlm.run/v1", "http://:8080/v1", "http://user@/v1", "http://h:0x50", "https://?q=1"]
)
def test_a_base_url_without_a_host_is_a_config_error(url: str) -> None:
    """The same rule as `vlm-receiver check` (vlmhooks/http_url.py): a netloc is not a host."""
    with pytest.raises(ConfigError) as caught:
        VlmRunClient("sk", url)
    assert caught.value.detail == f"VLMRUN_BASE_URL must be an http(s) URL, got {url!r}"


def test_a_base_url_may_carry_credentials_for_a_proxy() -> None:
    url = "https://user:secret@proxy.example:8443/v1"
    assert VlmRunClient("sk", url).base_url == url


@pytest.mark.anyio
async def test_async_client_retries_429_with_the_same_request_id() -> None:
    api = Recorder(status(429, {"Retry-After": "2"}), created)
    sleeps: list[float] = []

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with AsyncVlmRunClient(
        "sk-test", BASE, transport=httpx.MockTransport(api), sleep=record_sleep
    ) as client:
        response = await client.generate(a_request())
        with pytest.raises(AuthenticationError):
            api.script = [status(401, detail="nope")]
            api.requests.clear()
            await client.get_prediction(response.id)
    assert sleeps == [2.0]


def test_receiver_client_long_polls_with_its_own_key() -> None:
    api = Recorder(status(200, id="p1", status="completed"))
    client = ReceiverClient(
        "http://receiver.test/", "lookup-key", transport=httpx.MockTransport(api)
    )
    assert client.get_prediction("p1", wait=25) == {"id": "p1", "status": "completed"}
    sent = api.requests[0]
    assert str(sent.url) == "http://receiver.test/v1/predictions/p1?wait=25"
    assert sent.headers["authorization"] == "Bearer lookup-key"
    assert sent.extensions["timeout"]["read"] >= 25


def test_receiver_client_401_names_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLMHOOKS_API_KEY", "wrong")
    api = Recorder(
        lambda _r: httpx.Response(
            401,
            json={"title": "Unauthorized", "status": 401, "detail": "bad key"},
            headers={"content-type": "application/problem+json"},
        )
    )
    client = ReceiverClient("http://receiver.test", transport=httpx.MockTransport(api))
    with pytest.raises(AuthenticationError, match=r"rejected \(bad key\); check VLMHOOKS_API_KEY"):
        client.get_prediction("p1")

"""The Submitter over MockTransport: bounded concurrency, lazy images, per-item errors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from submit.client import VlmRunClient
from submit.errors import ConfigError
from submit.images import FileImage, ImageSource, expand_image_inputs
from submit.retry import NO_RETRIES
from submit.submitter import SubmitItem, Submitter
from tests.submit.conftest import SECRET_KEYS, png_bytes
from vlmhooks.trust.tokens import CallbackTokens

PNG_DATA_URL_PREFIX = "data:image/png;base64,"


class Gauge:
    """Counts items whose image is encoded and whose answer has not come back yet."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live = 0
        self.peak = 0
        self.encoded = 0

    def up(self) -> None:
        with self.lock:
            self.live += 1
            self.encoded += 1
            self.peak = max(self.peak, self.live)

    def down(self) -> None:
        with self.lock:
            self.live -= 1


@dataclass(frozen=True)
class GaugedImage(ImageSource):
    """An image that reports when it is encoded."""

    gauge: Gauge

    def to_request_value(self) -> str:
        self.gauge.up()
        return PNG_DATA_URL_PREFIX + "iVBORw0KGgo="


def api(gauge: Gauge | None = None, delay: float = 0.0) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        time.sleep(delay)
        if gauge is not None:
            gauge.down()
        status = "enqueued" if body["batch"] else "completed"
        return httpx.Response(
            201, json={"id": f"pred-{body['id']}", "status": status, "response": None}
        )

    return httpx.MockTransport(handle)


def test_images_are_encoded_only_when_their_request_is_sent() -> None:
    gauge = Gauge()
    pulled: list[int] = []

    def items() -> Iterator[SubmitItem]:
        for index in range(40):
            pulled.append(index)
            yield SubmitItem((GaugedImage(label=f"img-{index}", gauge=gauge),))

    client = VlmRunClient("sk", "http://api.test/v1", transport=api(gauge, delay=0.01))
    results = Submitter(client, domain="image.caption", concurrency=3).submit(items())
    first = next(results)
    # A lazy input is read just ahead of the pool, never all at once.
    assert len(pulled) <= 4
    rest = list(results)
    assert first.ok and all(r.ok for r in rest)
    assert len(rest) + 1 == 40
    assert gauge.encoded == 40
    assert gauge.peak <= 3, f"{gauge.peak} requests' images were held at once"
    assert sorted(r.index for r in [first, *rest]) == list(range(40))


def test_concurrency_is_actually_used() -> None:
    gauge = Gauge()
    items = [SubmitItem((GaugedImage(label=f"i{n}", gauge=gauge),)) for n in range(12)]
    client = VlmRunClient("sk", "http://api.test/v1", transport=api(gauge, delay=0.05))
    started = time.monotonic()
    list(Submitter(client, domain="image.caption", concurrency=4).submit(items))
    elapsed = time.monotonic() - started
    assert gauge.peak == 4
    assert elapsed < 12 * 0.05, "requests ran one after another"


def test_an_unreadable_image_fails_its_item_only(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes((1, 2, 3)))
    doomed = tmp_path / "doomed.png"
    doomed.write_bytes(png_bytes((4, 5, 6)))
    sources = list(expand_image_inputs([good, doomed]))
    doomed.unlink()  # vanishes between expansion and sending
    client = VlmRunClient("sk", "http://api.test/v1", transport=api())
    results = sorted(
        Submitter(client, domain="image.caption").submit(SubmitItem((s,)) for s in sources),
        key=lambda r: r.index,
    )
    assert results[0].ok and results[0].prediction_id is not None
    assert not results[1].ok
    assert str(doomed) in (results[1].error or "")
    assert results[1].prediction_id is None


def test_file_images_are_sent_as_data_urls_with_a_callback_per_submission(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes((9, 9, 9)))
    seen: list[dict[str, object]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        return httpx.Response(201, json={"id": "p1", "status": "enqueued"})

    tokens = CallbackTokens(list(SECRET_KEYS))
    client = VlmRunClient("sk", "http://api.test/v1", transport=httpx.MockTransport(handle))
    submitter = Submitter(
        client,
        domain="document.receipt",
        prompt="total?",
        json_schema={"type": "object"},
        tokens=tokens,
        public_url="https://hooks.example.com/",
    )
    (result,) = list(submitter.submit([SubmitItem(tuple(expand_image_inputs(path)))]))
    (body,) = seen
    assert body["images"] == [FileImage(label="", path=path, mime="").to_request_value()]
    assert body["domain"] == "document.receipt"
    assert body["batch"] is True
    config = body["config"]
    assert isinstance(config, dict)
    assert (config["prompt"], config["json_schema"]) == ("total?", {"type": "object"})
    assert body["id"] == result.request_id
    callback = str(body["callback_url"])
    assert callback.startswith("https://hooks.example.com/v1/callbacks/")
    assert tokens.verify(callback.rsplit("/", 1)[1]) == result.submission_id
    assert result.callback_url == callback


def test_api_errors_are_reported_per_item() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"detail": [{"loc": ["body", "x"], "msg": "bad"}]})

    client = VlmRunClient(
        "sk", "http://api.test/v1", transport=httpx.MockTransport(handle), retry=NO_RETRIES
    )
    gauge = Gauge()
    items = [SubmitItem((GaugedImage(label=f"i{n}", gauge=gauge),)) for n in range(3)]
    results = list(Submitter(client, domain="image.caption").submit(items))
    assert [r.error for r in results] == ["HTTP 422: body.x: bad"] * 3


def test_callback_config_needs_both_tokens_and_public_url() -> None:
    client = VlmRunClient("sk", "http://api.test/v1", transport=api())
    with pytest.raises(ConfigError, match="VLMHOOKS_PUBLIC_URL"):
        Submitter(client, domain="image.caption", tokens=CallbackTokens(list(SECRET_KEYS)))


def test_unknown_domain_is_refused_before_anything_is_sent() -> None:
    client = VlmRunClient("sk", "http://api.test/v1", transport=api())
    with pytest.raises(ValueError, match=r"image\.captions"):
        Submitter(client, domain="image.captions")

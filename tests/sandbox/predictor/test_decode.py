from __future__ import annotations

import base64

import pytest

from sandbox.errors import LoopbackImageURL, NoNetwork, PredictionFailed
from sandbox.predictor.decode import decode_image_value
from tests.sandbox.predictor.images import solid

PNG = solid((12, 34, 56), size=(8, 8))
B64 = base64.b64encode(PNG).decode()


@pytest.mark.parametrize(
    "value",
    [
        B64,
        f"data:image/png;base64,{B64}",
        f"DATA:image/jpeg;BASE64,{B64}",
        f"data:image/png;name=x.png;base64,{B64}",
        f"  data:image/png;base64,{B64[:20]}\n{B64[20:]}  ",
        base64.urlsafe_b64encode(PNG).decode().rstrip("="),
        f"data:;base64,{B64}",
    ],
)
def test_base64_and_data_urls_decode(value: str) -> None:
    assert decode_image_value(value) == PNG


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("not base64 at all!", "neither base64 nor a data: URL"),
        ("data:image/png,rawbytes", "without ';base64'"),
        ("data:image/png;base64", "no comma"),
        (f"data:text/plain;base64,{B64}", "text/plain"),
    ],
)
def test_bad_values_fail_clearly(value: str, message: str) -> None:
    with pytest.raises(PredictionFailed, match=message) as info:
        decode_image_value(value, index=3)
    assert "image #3" in str(info.value)
    assert info.value.image_index == 3


@pytest.mark.parametrize(
    "url", ["https://example.com/a.png", "http://10.0.0.5/a.png", "https://127.0.0.1.nip.io/x"]
)
def test_remote_urls_say_there_is_no_network(url: str) -> None:
    with pytest.raises(NoNetwork, match="no network") as info:
        decode_image_value(url)
    assert info.value.url == url
    assert not isinstance(info.value, LoopbackImageURL)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/a.png",
        "http://127.1.2.3/a.png",
        "http://localhost/a.png",
        "HTTP://LOCALHOST:9/a.png",
        "http://[::1]:8000/a.png",
        "http://app.localhost/a.png",
    ],
)
def test_loopback_urls_are_left_to_the_caller(url: str) -> None:
    with pytest.raises(LoopbackImageURL) as info:
        decode_image_value(url)
    assert info.value.url == url
    assert isinstance(info.value, PredictionFailed)

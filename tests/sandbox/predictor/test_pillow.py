from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from sandbox.errors import PredictionFailed, SandboxError
from sandbox.predictor.pillow import SANDBOX_KEY, PillowPredictor, Predictor
from schemas.enums import Domain
from tests.sandbox.predictor.images import encode, halves, scene, solid
from tests.sandbox.predictor.responses import without_metadata

# -- determinism --------------------------------------------------------------------------


@pytest.mark.parametrize("domain", [d.value for d in Domain])
def test_same_image_same_response(domain: str) -> None:
    images = [scene(1), scene(2)]
    first = PillowPredictor().predict(images, domain, None)
    second = PillowPredictor().predict([bytes(i) for i in images], domain, {"prompt": "x"})
    assert first == second


@pytest.mark.parametrize("domain", [d.value for d in Domain])
def test_different_images_different_response(predictor: PillowPredictor, domain: str) -> None:
    wide_dark = solid((90, 10, 10), size=(160, 90))
    tall_bright = halves((120, 200, 255), (250, 250, 250), size=(60, 120))
    a = predictor.predict([wide_dark], domain, None)
    b = predictor.predict([tall_bright], domain, None)
    assert without_metadata(a) != without_metadata(b)
    assert a[SANDBOX_KEY]["images"] != b[SANDBOX_KEY]["images"]


def test_the_values_follow_the_pixels_not_the_encoding(predictor: PillowPredictor) -> None:
    png = predictor.predict([scene(7)], "document.invoice", None)
    bmp_bytes = encode(Image.open(io.BytesIO(scene(7))), "BMP")
    bmp = predictor.predict([bmp_bytes], "document.invoice", None)
    assert without_metadata(png) == without_metadata(bmp)
    assert bmp[SANDBOX_KEY]["images"][0]["format"] == "BMP"


def test_pillow_predictor_satisfies_the_protocol() -> None:
    implementation: Predictor = PillowPredictor()
    assert implementation.predict([solid((1, 2, 3))], "image.caption", None)["caption"]


# -- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"definitely not an image", solid((1, 2, 3))[:60], b"\x89PNG\r\n\x1a\n" + bytes(40)],
    ids=["empty", "text", "truncated-png", "png-magic-only"],
)
def test_undecodable_images_fail_the_prediction(predictor: PillowPredictor, data: bytes) -> None:
    with pytest.raises(PredictionFailed, match="image #1") as info:
        predictor.predict([solid((0, 0, 0)), data], "document.invoice", None)
    assert info.value.image_index == 1
    assert isinstance(info.value, SandboxError)


def test_no_images_and_unknown_domains_fail(predictor: PillowPredictor) -> None:
    with pytest.raises(PredictionFailed, match="no images"):
        predictor.predict([], "image.caption", None)
    with pytest.raises(PredictionFailed, match=re.escape("unknown domain 'image.captions'")):
        predictor.predict([solid((0, 0, 0))], "image.captions", None)


def test_the_pixel_limit_is_enforced() -> None:
    with pytest.raises(PredictionFailed, match="pixel limit"):
        PillowPredictor(max_pixels=100).predict([solid((0, 0, 0))], "image.caption", None)

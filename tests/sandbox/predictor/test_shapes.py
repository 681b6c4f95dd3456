from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from PIL import Image

from sandbox.errors import PredictionFailed
from sandbox.predictor import shapes
from sandbox.predictor.pillow import SANDBOX_KEY, PillowPredictor
from sandbox.predictor.shapes import DOMAIN_SHAPES, shape_for
from schemas.enums import Domain
from tests.sandbox.predictor.images import encode, halves, scene, solid
from tests.sandbox.predictor.responses import DOMAIN_FIELDS, without_metadata

MONEY_KEYS = {
    "unit_price", "amount", "subtotal", "tax", "total", "amount_due", "tip", "price",
    "previous_balance", "payments_received", "current_charges", "total_amount_due",
}  # fmt: skip


def walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from walk(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item, key)


@pytest.mark.parametrize("domain", list(Domain))
def test_every_domain_has_a_shape(domain: Domain) -> None:
    assert shape_for(domain.value) is DOMAIN_SHAPES[domain]


def test_the_shapes_are_keyed_by_exactly_the_domains() -> None:
    assert set(DOMAIN_SHAPES) == set(Domain)


def test_an_unknown_domain_fails_the_prediction_naming_every_domain() -> None:
    with pytest.raises(PredictionFailed) as info:
        shape_for("image.captions")
    assert str(info.value).startswith("unknown domain 'image.captions'; expected one of (")
    assert all(repr(domain.value) in str(info.value) for domain in Domain)


def test_a_domain_without_a_shape_is_a_bug_not_a_failed_prediction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shapes, "DOMAIN_SHAPES", {})
    with pytest.raises(LookupError, match=re.escape("domain 'document.invoice'")):
        shape_for("document.invoice")


def test_every_domain_is_listed_here() -> None:
    assert set(DOMAIN_FIELDS) == {d.value for d in Domain}
    assert len(Domain) == 15


@pytest.mark.parametrize("domain", [d.value for d in Domain])
def test_every_domain_produces_its_fields_with_realistic_types(
    predictor: PillowPredictor, domain: str
) -> None:
    response = predictor.predict([scene(3), scene(4)], domain, None)

    assert DOMAIN_FIELDS[domain] <= set(response)
    assert not any(key.startswith("_") for key in without_metadata(response))
    for key, value in walk(without_metadata(response)):
        if key.endswith("date") and value is not None:
            date.fromisoformat(value)
        if key in MONEY_KEYS and not isinstance(value, dict):
            assert isinstance(value, float), (key, value)
            assert round(value, 2) == value
    metadata = response[SANDBOX_KEY]
    assert (metadata["predictor"], metadata["version"], metadata["domain"]) == (
        "pillow",
        1,
        domain,
    )
    assert [image["width"] for image in metadata["images"]] == [120, 120]
    assert set(metadata["images"][0]) >= {
        "width", "height", "format", "mode", "brightness", "dominant_colors",
        "average_hash", "difference_hash", "aspect_ratio",
    }  # fmt: skip


@pytest.mark.parametrize("seed", range(12))
def test_invoice_arithmetic_adds_up(predictor: PillowPredictor, seed: int) -> None:
    invoice = predictor.predict([scene(seed)], "document.invoice", None)
    for item in invoice["line_items"]:
        assert item["amount"] == round(item["quantity"] * item["unit_price"], 2)
    assert invoice["subtotal"] == round(sum(i["amount"] for i in invoice["line_items"]), 2)
    assert invoice["total"] == round(invoice["subtotal"] + invoice["tax"], 2)
    assert date.fromisoformat(invoice["due_date"]) > date.fromisoformat(invoice["issue_date"])
    assert invoice["currency"] in {"USD", "EUR", "GBP", "CAD"}


@pytest.mark.parametrize("seed", range(12))
def test_receipt_and_bill_arithmetic_adds_up(predictor: PillowPredictor, seed: int) -> None:
    receipt = predictor.predict([scene(seed)], "document.receipt", None)
    assert receipt["subtotal"] == round(sum(i["total"] for i in receipt["items"]), 2)
    assert receipt["total"] == round(receipt["subtotal"] + receipt["tax"] + receipt["tip"], 2)
    bill = predictor.predict([scene(seed)], "document.utility-bill", None)
    assert bill["total_amount_due"] == round(sum(c["amount"] for c in bill["charges"]), 2)


def test_document_domains_have_one_page_per_image(predictor: PillowPredictor) -> None:
    images = [scene(1, size=(100, 140)), scene(2, size=(140, 100)), scene(3)]
    for domain in ("document.ocr", "document.markdown", "document.generative"):
        pages = predictor.predict(images, domain, None)["pages"]
        assert [p["page_number"] for p in pages] == [1, 2, 3]
    ocr = predictor.predict(images, "document.ocr", None)
    assert [(p["width"], p["height"]) for p in ocr["pages"]] == [(100, 140), (140, 100), (120, 80)]
    assert ocr["text"] == "\n\n".join(p["text"] for p in ocr["pages"])


@pytest.mark.parametrize("domain", ["video.tv-news", "video.caption", "video.commentary"])
def test_video_domains_treat_images_as_frames(predictor: PillowPredictor, domain: str) -> None:
    shot_a = halves((0, 0, 0), (255, 255, 255))
    shot_b = halves((255, 255, 255), (0, 0, 0))
    segments = predictor.predict([shot_a, shot_a, shot_b], domain, None)["segments"]
    assert [s["frame_index"] for s in segments] == [0, 1, 2]
    assert [s["start_time_s"] for s in segments] == [0.0, 1.0, 2.0]
    assert [s["scene_change"] for s in segments] == [True, False, True]


def test_caption_reads_the_picture(predictor: PillowPredictor) -> None:
    dark = predictor.predict([solid((20, 20, 110), size=(200, 100))], "image.caption", None)
    assert "dark" in dark["tags"] and "landscape" in dark["tags"]
    assert dark["caption"] == "A dark landscape plain surface dominated by navy tones."
    mug = Image.new("RGB", (80, 120), (240, 240, 240))
    mug.paste((200, 30, 40), (20, 30, 60, 90))
    shot = predictor.predict([encode(mug)], "image.caption", None)
    assert shot["caption"] == (
        "A bright portrait object on a plain backdrop dominated by white and red tones."
    )


def test_remote_sensing_land_cover_follows_the_colors(predictor: PillowPredictor) -> None:
    image = Image.new("RGB", (100, 100), (34, 139, 34))
    image.paste((30, 90, 220), (0, 0, 100, 20))
    response = predictor.predict([encode(image)], "aerospace.remote-sensing", None)
    assert response["scene_type"] == "vegetation"
    assert [c["class"] for c in response["land_cover"]] == ["vegetation", "water"]
    assert sum(c["fraction"] for c in response["land_cover"]) == pytest.approx(1.0)
    assert response["cloud_cover"] == 0.0

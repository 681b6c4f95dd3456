from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pydantic
import pytest
from jsonschema import validators
from PIL import Image, ImageDraw

from sandbox.errors import LoopbackImageURL, NoNetwork, PredictionFailed, SandboxError
from sandbox.predictor import (
    DOMAINS,
    SANDBOX_KEY,
    PillowPredictor,
    Predictor,
    decode_image_value,
    extract_features,
)
from sandbox.samples import SAMPLE_DOMAINS, generate_samples, sample_paths
from submit.images import sniff_image_mime

RGB = tuple[int, int, int]


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def solid(color: RGB, size: tuple[int, int] = (64, 64), fmt: str = "PNG") -> bytes:
    return encode(Image.new("RGB", size, color), fmt)


def halves(left: RGB, right: RGB, size: tuple[int, int] = (64, 64)) -> bytes:
    image = Image.new("RGB", size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return encode(image)


def scene(seed: int, size: tuple[int, int] = (120, 80)) -> bytes:
    """A busy picture whose content depends on ``seed``."""
    image = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    draw = ImageDraw.Draw(image)
    for i in range(6):
        x, y = (seed * 17 + i * 23) % size[0], (seed * 29 + i * 11) % size[1]
        color = ((seed + i) * 71 % 256, (seed * i) * 13 % 256, (i * 40) % 256)
        draw.rectangle((x, y, x + 25, y + 18), fill=color)
    return encode(image)


@pytest.fixture
def predictor() -> PillowPredictor:
    return PillowPredictor()


def without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != SANDBOX_KEY}


def walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from walk(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item, key)


# -- features -----------------------------------------------------------------------------


def test_features_measure_the_image() -> None:
    features = extract_features(halves((0, 0, 0), (255, 255, 255), size=(128, 64)))
    assert (features.width, features.height) == (128, 64)
    assert (features.format, features.mode) == ("PNG", "RGB")
    assert features.aspect_ratio == 2.0
    assert features.brightness == 0.5


def test_brightness_spans_black_to_white() -> None:
    assert extract_features(solid((0, 0, 0))).brightness == 0.0
    assert extract_features(solid((255, 255, 255))).brightness == 1.0
    assert 0.2 < extract_features(solid((90, 90, 90))).brightness < 0.5


def test_transparency_is_seen_over_white() -> None:
    clear = encode(Image.new("RGBA", (16, 16), (0, 0, 0, 0)))
    assert extract_features(clear).brightness == 1.0


def test_dominant_colors_are_hex_most_frequent_first() -> None:
    image = Image.new("RGB", (40, 40), (255, 0, 0))
    image.paste((0, 0, 255), (0, 30, 40, 40))
    features = extract_features(encode(image))
    assert features.dominant_colors == ("#ff0000", "#0000ff")
    assert features.color_fractions == (0.75, 0.25)


def test_near_identical_shades_count_as_one_color() -> None:
    image = Image.new("RGB", (40, 40), (255, 255, 255))
    image.paste((250, 250, 251), (0, 0, 40, 10))
    image.paste((20, 40, 90), (0, 30, 40, 40))
    features = extract_features(encode(image))
    assert len(features.dominant_colors) == 2
    assert features.color_fractions[0] == 0.75


def test_perceptual_hashes_known_answers() -> None:
    dark_left = extract_features(halves((0, 0, 0), (255, 255, 255)))
    light_left = extract_features(halves((255, 255, 255), (0, 0, 0)))
    assert dark_left.average_hash == "0f0f0f0f0f0f0f0f"
    assert light_left.average_hash == "f0f0f0f0f0f0f0f0"
    assert dark_left.difference_hash == "0000000000000000"
    assert light_left.difference_hash == "1818181818181818"


def test_jpeg_features_use_the_full_size_even_when_decoded_small() -> None:
    features = extract_features(solid((10, 200, 10), size=(1600, 900), fmt="JPEG"))
    assert (features.width, features.height, features.format) == (1600, 900, "JPEG")


def test_high_bit_depth_grayscale_is_handled() -> None:
    image = Image.new("I;16", (16, 16), 65535)
    assert extract_features(encode(image)).brightness > 0.95


# -- determinism --------------------------------------------------------------------------


@pytest.mark.parametrize("domain", DOMAINS)
def test_same_image_same_response(domain: str) -> None:
    images = [scene(1), scene(2)]
    first = PillowPredictor().predict(images, domain, None)
    second = PillowPredictor().predict([bytes(i) for i in images], domain, {"prompt": "x"})
    assert first == second


@pytest.mark.parametrize("domain", DOMAINS)
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


# -- domain shapes ------------------------------------------------------------------------

DOMAIN_FIELDS: dict[str, set[str]] = {
    "aerospace.remote-sensing": {"description", "scene_type", "land_cover", "cloud_cover"},
    "document.ocr": {"text", "pages"},
    "document.generative": {"title", "summary", "text", "pages"},
    "document.invoice": {
        "invoice_id",
        "issue_date",
        "due_date",
        "vendor_name",
        "vendor_address",
        "customer_name",
        "line_items",
        "subtotal",
        "tax",
        "total",
        "currency",
    },
    "document.markdown": {"markdown", "pages"},
    "document.presentation": {"title", "markdown", "pages"},
    "document.receipt": {
        "merchant_name",
        "transaction_date",
        "items",
        "subtotal",
        "tax",
        "total",
        "currency",
    },
    "document.resume": {"contact_info", "summary", "work_experience", "education", "skills"},
    "document.utility-bill": {
        "provider_name",
        "account_number",
        "billing_period",
        "due_date",
        "usage",
        "charges",
        "total_amount_due",
    },
    "image.caption": {"caption", "tags"},
    "retail.product-catalog": {"product_name", "brand", "category", "price", "currency", "sku"},
    "retail.ecommerce-product-caption": {"title", "description", "category", "tags"},
    "video.tv-news": {"summary", "topics", "segments"},
    "video.caption": {"caption", "segments"},
    "video.commentary": {"summary", "segments"},
}
MONEY_KEYS = {
    "unit_price", "amount", "subtotal", "tax", "total", "amount_due", "tip", "price",
    "previous_balance", "payments_received", "current_charges", "total_amount_due",
}  # fmt: skip


def test_every_domain_is_listed_here() -> None:
    assert set(DOMAIN_FIELDS) == set(DOMAINS)
    assert len(DOMAINS) == 15


@pytest.mark.parametrize("domain", DOMAINS)
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


# -- json_schema --------------------------------------------------------------------------

FLAT = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 30, "maxLength": 40},
        "short": {"type": "string", "maxLength": 3},
        "count": {"type": "integer", "minimum": 5, "maximum": 7},
        "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "negative": {"type": "number", "maximum": -10.5},
        "even": {"type": "integer", "multipleOf": 4, "minimum": 10, "maximum": 20},
        "ok": {"type": "boolean"},
        "nothing": {"type": "null"},
        "kind": {"enum": ["alpha", "beta", "gamma"]},
        "version": {"const": 2},
        "day": {"type": "string", "format": "date"},
        "at": {"type": "string", "format": "date-time"},
        "email": {"type": "string", "format": "email"},
        "site": {"type": "string", "format": "uri"},
        "ref": {"type": "string", "format": "uuid"},
        "host": {"type": "string", "format": "ipv4"},
    },
    "required": ["name", "count", "kind"],
    "additionalProperties": False,
}
NESTED_2020 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["header", "items", "tags"],
    "properties": {
        "header": {"$ref": "#/$defs/Header"},
        "items": {"type": "array", "minItems": 3, "items": {"$ref": "#/$defs/Item"}},
        "tags": {
            "type": "array",
            "items": {"enum": ["x", "y", "z"]},
            "minItems": 3,
            "uniqueItems": True,
        },
        "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
    },
    "$defs": {
        "Header": {
            "type": "object",
            "required": ["number", "issued", "billing"],
            "properties": {
                "number": {"type": "string"},
                "issued": {"type": "string", "format": "date"},
                "billing": {"$ref": "#/$defs/Address"},
            },
        },
        "Address": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "additionalProperties": False,
        },
        "Item": {
            "type": "object",
            "required": ["sku", "qty", "price"],
            "properties": {
                "sku": {"type": "string"},
                "qty": {"type": "integer", "minimum": 1},
                "price": {"type": "number", "minimum": 0, "maximum": 100},
                "size": {"prefixItems": [{"type": "number"}, {"type": "string"}], "minItems": 2},
            },
        },
    },
}
DRAFT7_COMBINATORS = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "definitions": {
        "Money": {
            "type": "object",
            "required": ["amount", "currency"],
            "properties": {
                "amount": {"type": "number", "multipleOf": 0.25, "minimum": 3},
                "currency": {"enum": ["USD", "EUR"]},
            },
        }
    },
    "type": "object",
    "required": ["total", "note", "payment", "code", "both"],
    "properties": {
        "total": {"$ref": "#/definitions/Money"},
        "note": {"type": ["null", "string"]},
        "payment": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["card"],
                    "properties": {"card": {"type": "string"}},
                },
                {"type": "null"},
            ]
        },
        "code": {
            "anyOf": [{"type": "integer", "minimum": 100, "maximum": 199}, {"type": "string"}]
        },
        "both": {
            "allOf": [
                {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}},
                {"required": ["b"], "properties": {"b": {"type": "boolean"}}},
            ]
        },
    },
}
DRAFT4_EXCLUSIVE = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "required": ["n"],
    "properties": {"n": {"type": "integer", "minimum": 0, "exclusiveMinimum": True, "maximum": 1}},
}
RECURSIVE = {
    "$defs": {
        "Node": {
            "type": "object",
            "required": ["name", "children"],
            "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
            },
        }
    },
    "type": "object",
    "required": ["root"],
    "properties": {"root": {"$ref": "#/$defs/Node"}},
}

# A linked list: the recursion runs through an optional property, so it must stop by itself.
LINKED = {
    "$defs": {
        "Link": {
            "type": "object",
            "required": ["value"],
            "properties": {"value": {"type": "integer"}, "next": {"$ref": "#/$defs/Link"}},
        }
    },
    "$ref": "#/$defs/Link",
}


class Address(pydantic.BaseModel):
    street: str
    city: str
    postal_code: str | None = None


class LineItem(pydantic.BaseModel):
    description: str
    quantity: int = pydantic.Field(ge=1)
    unit_price: float = pydantic.Field(ge=0)


class Invoice(pydantic.BaseModel):
    invoice_id: str
    issue_date: date
    status: Literal["draft", "sent", "paid"]
    customer: Address
    items: list[LineItem] = pydantic.Field(min_length=2)
    notes: str | None = None


SCHEMAS: dict[str, dict[str, Any]] = {
    "flat": FLAT,
    "nested-2020-12": NESTED_2020,
    "draft7-combinators": DRAFT7_COMBINATORS,
    "draft4-exclusive": DRAFT4_EXCLUSIVE,
    "recursive": RECURSIVE,
    "linked": LINKED,
    "pydantic": Invoice.model_json_schema(),
}


def assert_valid(instance: Any, schema: dict[str, Any]) -> None:
    validator_class = validators.validator_for(schema)
    validator_class(schema, format_checker=validator_class.FORMAT_CHECKER).validate(instance)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_json_schema_is_followed(predictor: PillowPredictor, name: str) -> None:
    schema = SCHEMAS[name]
    response = predictor.predict([scene(5)], "document.invoice", {"json_schema": schema})

    assert_valid(response, schema)
    assert_valid(without_metadata(response), schema)
    assert "invoice_id" not in response or name == "pydantic"  # the domain shape is ignored
    for key in schema.get("properties", {}):
        assert key in response, key  # optional properties are filled too


def test_schema_values_respect_the_constraints(predictor: PillowPredictor) -> None:
    flat = predictor.predict([scene(1)], "image.caption", {"json_schema": FLAT})
    assert 30 <= len(flat["name"]) <= 40 and len(flat["short"]) <= 3
    assert 5 <= flat["count"] <= 7 and 0 < flat["ratio"] < 1 and flat["negative"] <= -10.5
    assert flat["even"] in (12, 16, 20)
    assert (flat["version"], flat["nothing"]) == (2, None)
    assert flat["kind"] in ("alpha", "beta", "gamma")
    date.fromisoformat(flat["day"])
    nested = predictor.predict([scene(1)], "image.caption", {"json_schema": NESTED_2020})
    assert len(nested["items"]) == 3
    assert sorted(nested["tags"]) == ["x", "y", "z"]
    assert isinstance(nested["items"][0]["size"][0], float)
    for seed in range(10):  # 0 is allowed by "minimum" alone; only exclusivity rules it out
        config = {"json_schema": DRAFT4_EXCLUSIVE}
        assert predictor.predict([scene(seed)], "image.caption", config)["n"] == 1


def test_schema_responses_carry_metadata_unless_the_schema_forbids_it(
    predictor: PillowPredictor,
) -> None:
    open_schema = predictor.predict([scene(2)], "image.caption", {"json_schema": NESTED_2020})
    assert open_schema[SANDBOX_KEY]["schema_valid"] is True
    assert open_schema[SANDBOX_KEY]["predictor"] == "pillow"
    closed = predictor.predict([scene(2)], "image.caption", {"json_schema": FLAT})
    assert SANDBOX_KEY not in closed


def test_schema_responses_are_deterministic_and_follow_the_image(
    predictor: PillowPredictor,
) -> None:
    config = {"json_schema": NESTED_2020}
    assert predictor.predict([scene(8)], "video.caption", config) == predictor.predict(
        [scene(8)], "video.caption", config
    )
    a = predictor.predict([scene(8)], "video.caption", config)
    b = predictor.predict([scene(9)], "video.caption", config)
    assert without_metadata(a) != without_metadata(b)


def test_an_empty_json_schema_means_none(predictor: PillowPredictor) -> None:
    response = predictor.predict([scene(1)], "document.receipt", {"json_schema": {}})
    assert "merchant_name" in response


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "objekt"}, "not a valid JSON Schema"),
        ({"type": "object", "properties": {"a": {"$ref": "https://x/y.json"}}}, "not local"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}, "points nowhere"),
        ({"type": "array", "items": {"type": "string"}}, "must describe an object"),
        ("not a schema", "must be a JSON object"),
    ],
)
def test_unusable_schemas_fail_the_prediction(
    predictor: PillowPredictor, schema: Any, message: str
) -> None:
    with pytest.raises(PredictionFailed, match=message):
        predictor.predict([scene(1)], "image.caption", {"json_schema": schema})


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


# -- decoding request values --------------------------------------------------------------

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


# -- samples ------------------------------------------------------------------------------


def test_the_shipped_samples_are_small_images() -> None:
    paths = sample_paths()
    assert [p.name for p in paths] == sorted(SAMPLE_DOMAINS)
    for path in paths:
        data = path.read_bytes()
        assert len(data) < 40_000, path
        assert sniff_image_mime(data[:32]) in ("image/png", "image/jpeg")
    with Image.open(next(p for p in paths if p.name == "receipt.png")) as receipt:
        assert receipt.height > 2 * receipt.width
    with Image.open(next(p for p in paths if p.name == "photo.jpg")) as photo:
        assert photo.format == "JPEG"


def test_the_samples_predict_with_their_demo_domains(predictor: PillowPredictor) -> None:
    for path in sample_paths():
        response = predictor.predict([path.read_bytes()], SAMPLE_DOMAINS[path.name], None)
        assert DOMAIN_FIELDS[SAMPLE_DOMAINS[path.name]] <= set(response)
    tags = {
        path.name: predictor.predict([path.read_bytes()], "image.caption", None)["tags"]
        for path in sample_paths()
    }
    assert "document" in tags["invoice.png"] and "document" in tags["receipt.png"]
    assert "photo" in tags["photo.jpg"] and "photo" in tags["product.png"]


def test_generate_samples_redraws_the_shipped_set(tmp_path: Path) -> None:
    generated = generate_samples(tmp_path / "out")
    assert [p.name for p in generated] == [p.name for p in sample_paths()]
    for new, shipped in zip(generated, sample_paths(), strict=True):
        with Image.open(new) as a, Image.open(shipped) as b:
            assert (a.size, a.format) == (b.size, b.format)
        assert len(new.read_bytes()) < 40_000


def test_jsonschema_module_agrees_with_a_plain_validate(predictor: PillowPredictor) -> None:
    response = predictor.predict([scene(6)], "image.caption", {"json_schema": NESTED_2020})
    jsonschema.validate(response, NESTED_2020)

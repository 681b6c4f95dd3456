from __future__ import annotations

from datetime import date
from typing import Any, Literal

import jsonschema
import pydantic
import pytest
from jsonschema import validators

from sandbox.errors import PredictionFailed
from sandbox.predictor.draw import Draw
from sandbox.predictor.pillow import SANDBOX_KEY, PillowPredictor
from sandbox.predictor.schema_filler import fill_schema
from tests.sandbox.predictor.images import scene
from tests.sandbox.predictor.responses import without_metadata

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


def test_jsonschema_module_agrees_with_a_plain_validate(predictor: PillowPredictor) -> None:
    response = predictor.predict([scene(6)], "image.caption", {"json_schema": NESTED_2020})
    jsonschema.validate(response, NESTED_2020)


def test_a_required_property_no_value_satisfies_is_a_clear_failure() -> None:
    schema = {"type": "object", "properties": {"x": False}, "required": ["x"]}
    with pytest.raises(PredictionFailed, match="no value satisfies 'x'"):
        fill_schema(schema, Draw(b"seed", "schema"))

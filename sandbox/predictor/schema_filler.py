"""Values for a caller's ``config.json_schema``: a drawn instance meant to validate against it
(best effort: ``pattern`` is not honoured).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from jsonschema import exceptions as jsonschema_exceptions
from jsonschema import validators
from jsonschema.protocols import Validator

from sandbox.errors import PredictionFailed
from sandbox.predictor.draw import Draw, money
from sandbox.predictor.vocabulary import FIRST_NAMES, WORDS

__all__ = ["fill_schema", "schema_validator"]

_SCHEMA_MAX_DEPTH = 8


def schema_validator(schema: Any) -> Validator:
    """A validator for ``schema``, with format checks; ``PredictionFailed`` unless ``schema``
    is a JSON object that is a valid JSON Schema under its own ``$schema`` draft.
    """
    if not isinstance(schema, Mapping):
        raise PredictionFailed("config.json_schema must be a JSON object")
    validator_class = validators.validator_for(schema)
    try:
        validator_class.check_schema(dict(schema))
    except jsonschema_exceptions.SchemaError as exc:
        raise PredictionFailed(
            f"config.json_schema is not a valid JSON Schema: {exc.message}"
        ) from exc
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def fill_schema(schema: Mapping[str, Any], draw: Draw) -> Any:
    """A value drawn to validate against ``schema``; ``PredictionFailed`` for a ``$ref`` that is
    not local, points nowhere or loops.
    """
    try:
        return _SchemaFiller(schema, draw).fill(schema, "value", 0)
    except _Unfillable as exc:
        raise PredictionFailed(
            f"json_schema: no value satisfies {exc.args[0]!r} (schema false)"
        ) from exc


class _Unfillable(Exception):
    """A subschema no value satisfies (``false``); an optional property is then left out."""


class _SchemaFiller:
    def __init__(self, root: Mapping[str, Any], draw: Draw) -> None:
        self.root = root
        self.draw = draw

    def fill(self, schema: Any, key: str, depth: int) -> Any:
        if schema is False:
            raise _Unfillable(key)
        if schema is True or not isinstance(schema, Mapping):
            return f"{key}"
        schema = self.resolve(schema, depth)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.draw.choice(list(schema["enum"]))
        for keyword in ("anyOf", "oneOf"):
            if schema.get(keyword):
                rest = {k: v for k, v in schema.items() if k != keyword}
                return self.fill(self.merge([rest, schema[keyword][0]], depth), key, depth + 1)
        kind = self.type_of(schema)
        if kind == "object":
            return self.fill_object(schema, depth)
        if kind == "array":
            return self.fill_array(schema, key, depth)
        if kind == "string":
            return self.fill_string(schema, key)
        if kind == "integer":
            return self.fill_integer(schema)
        if kind == "number":
            return self.fill_number(schema)
        if kind == "boolean":
            return self.draw.below(2) == 1
        return None

    def resolve(self, schema: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
        """Follow ``$ref`` and fold ``allOf`` into one schema."""
        for _ in range(_SCHEMA_MAX_DEPTH * 4):
            if "$ref" in schema:
                target = self.lookup(schema["$ref"])
                rest = {k: v for k, v in schema.items() if k != "$ref"}
                schema = self.merge([target, rest], depth) if rest else target
            elif schema.get("allOf"):
                rest = {k: v for k, v in schema.items() if k != "allOf"}
                schema = self.merge([rest, *schema["allOf"]], depth)
            else:
                return schema
        raise PredictionFailed("config.json_schema has a $ref/allOf cycle")

    def lookup(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#"):
            raise PredictionFailed(f"config.json_schema $ref {ref!r} is not local (#/...)")
        node: Any = self.root
        for token in filter(None, unquote(ref[1:]).split("/")):
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise PredictionFailed(f"config.json_schema $ref {ref!r} points nowhere")
        if node is True:
            return {}
        if not isinstance(node, Mapping):
            raise PredictionFailed(f"config.json_schema $ref {ref!r} is not a schema")
        return node

    def merge(self, schemas: Sequence[Any], depth: int) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for part in schemas:
            if not isinstance(part, Mapping):
                continue
            part = self.resolve(part, depth)
            for name, value in part.items():
                if name == "properties" and isinstance(value, Mapping):
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif name == "required" and isinstance(value, list):
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged[name] = value
        return merged

    @staticmethod
    def type_of(schema: Mapping[str, Any]) -> str:
        declared = schema.get("type")
        if isinstance(declared, list):
            concrete = [t for t in declared if t != "null"]
            return str(concrete[0]) if concrete else "null"
        if isinstance(declared, str):
            return declared
        if any(k in schema for k in ("properties", "required", "additionalProperties")):
            return "object"
        if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
            return "array"
        if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "multipleOf")):
            return "number"
        return "string"

    def fill_object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required = list(dict.fromkeys(schema.get("required") or []))
        # Past the depth limit only required properties: recursive schemas must end.
        names = list(dict.fromkeys([*required, *properties]))
        if depth >= _SCHEMA_MAX_DEPTH:
            names = required
        result: dict[str, Any] = {}
        for name in names:
            subschema = properties.get(name, schema.get("additionalProperties", True))
            try:
                result[name] = self.fill(subschema, name, depth + 1)
            except _Unfillable:
                if name in required:
                    raise
        return result

    def fill_array(self, schema: Mapping[str, Any], key: str, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", True)
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", True)
        minimum = int(schema.get("minItems", 0))
        count = max(minimum, len(prefix), 0 if depth >= _SCHEMA_MAX_DEPTH else 1)
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        result: list[Any] = []
        for i in range(count):
            subschema = prefix[i] if i < len(prefix) else items
            value = self.fill(subschema, f"{key} {i + 1}", depth + 1)
            if schema.get("uniqueItems"):
                for _ in range(8):  # redraw duplicates (enum/boolean picks can collide)
                    if value not in result:
                        break
                    value = self.fill(subschema, f"{key} {i + 1}", depth + 1)
            result.append(value)
        return result

    def fill_string(self, schema: Mapping[str, Any], key: str) -> str:
        d = self.draw
        fmt = schema.get("format")
        if fmt == "date":
            return d.day().isoformat()
        if fmt == "date-time":
            return f"{d.day().isoformat()}T{d.integer(0, 23):02d}:{d.integer(0, 59):02d}:00Z"
        if fmt == "time":
            return f"{d.integer(0, 23):02d}:{d.integer(0, 59):02d}:00Z"
        if fmt in ("email", "idn-email"):
            return f"{d.choice(FIRST_NAMES).lower()}.{d.digits(3)}@example.com"
        if fmt in ("uri", "url", "iri", "uri-reference", "iri-reference"):
            return f"https://example.com/{d.digits(6)}"
        if fmt == "uuid":
            return str(uuid.UUID(bytes=d.raw(16), version=4))
        if fmt in ("hostname", "idn-hostname"):
            return f"host{d.digits(3)}.example.com"
        if fmt == "ipv4":
            return f"192.0.2.{d.integer(1, 254)}"
        if fmt == "ipv6":
            return f"2001:db8::{d.integer(1, 0xFFFF):x}"
        text = f"{key.replace('_', ' ')} {d.choice(WORDS)}"
        minimum, maximum = int(schema.get("minLength", 0)), schema.get("maxLength")
        if len(text) < minimum:
            text = text + "x" * (minimum - len(text))
        if maximum is not None:
            text = text[: int(maximum)]
        return text

    def bounds(self, schema: Mapping[str, Any], step: float) -> tuple[float, float]:
        low = _as_number(schema.get("minimum"))
        high = _as_number(schema.get("maximum"))
        exclusive_low = schema.get("exclusiveMinimum")
        exclusive_high = schema.get("exclusiveMaximum")
        # Draft 4 spells exclusivity as a boolean beside minimum/maximum; later drafts as numbers.
        if exclusive_low is True and low is not None:
            low += step
        elif (bound := _as_number(exclusive_low)) is not None:
            low = bound + step if low is None else max(low, bound + step)
        if exclusive_high is True and high is not None:
            high -= step
        elif (bound := _as_number(exclusive_high)) is not None:
            high = bound - step if high is None else min(high, bound - step)
        if low is None and high is None:
            return 1, 100
        if low is None:
            assert high is not None
            return (1 if high >= 1 else high - 100), high
        if high is None:
            return low, low + 100
        return low, high

    def fill_integer(self, schema: Mapping[str, Any]) -> int:
        low, high = self.bounds(schema, 1)
        low_i, high_i = int(-(-low // 1)), int(high // 1)
        multiple = schema.get("multipleOf")
        if isinstance(multiple, int) and multiple > 0:
            first = -(-low_i // multiple)
            last = high_i // multiple
            return multiple * (first + self.draw.below(max(1, last - first + 1)))
        return self.draw.integer(low_i, max(low_i, high_i))

    def fill_number(self, schema: Mapping[str, Any]) -> float:
        low, high = self.bounds(schema, 0.01)
        multiple = schema.get("multipleOf")
        if isinstance(multiple, int | float) and multiple > 0:
            first = -(-low // multiple)
            return float(first * multiple)
        low_cents, high_cents = int(-(-low * 100 // 1)), int(high * 100 // 1)
        if low_cents > high_cents:
            return float((low + high) / 2)
        return money(self.draw.integer(low_cents, high_cents))


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value

"""Building blocks of the OpenAPI document's operations: parameters, bodies, problems."""

from __future__ import annotations

from typing import Any

from receiver.api.shapes import Problem
from receiver.openapi.schemas import Schema, schema_ref
from receiver.problems import PROBLEM_MEDIA_TYPE

__all__ = [
    "TEXT_PARAM",
    "TIME",
    "content",
    "json_content",
    "path_param",
    "problem",
    "query_param",
]

TIME: Schema = {"type": "string", "format": "date-time"}
# PostgreSQL text cannot hold NUL, so such a value is refused rather than looked up.
TEXT_PARAM: Schema = {"type": "string", "pattern": "^[^\\u0000]*$"}


def problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": schema_ref(Problem)}},
    }


def content(description: str, media_type: str, schema: Schema) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": schema}}}


def json_content(description: str, schema: Schema) -> dict[str, Any]:
    return content(description, "application/json", schema)


def query_param(name: str, description: str, schema: Schema) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def path_param(name: str, description: str, schema: Schema | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1} if schema is None else schema,
    }

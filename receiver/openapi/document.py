"""The receiver's OpenAPI 3.1 document: operations from `openapi_paths` (reads),
`openapi_tools` and `openapi_public`, schemas generated
from the shape types by `openapi_schemas`; security follows the deployment.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from receiver.api.auth import ACCESS_TOKEN_PARAM
from receiver.api.forwarding import forwarding_openapi_paths
from receiver.dashboard.openapi import add_console_paths
from receiver.openapi.parts import problem
from receiver.openapi.paths import lookup_paths
from receiver.openapi.public import public_paths
from receiver.openapi.schemas import component_schemas
from receiver.openapi.tools import tool_paths

__all__ = ["API_VERSION", "OPENAPI_VERSION", "openapi_document"]

OPENAPI_VERSION = "3.1.0"
API_VERSION = "0.1.0"


@functools.cache
def _document(auth_required: bool) -> dict[str, Any]:
    paths = {**lookup_paths(), **tool_paths(), **forwarding_openapi_paths()}
    security: list[dict[str, list[str]]] = (
        [{"bearerAuth": []}, {"accessToken": []}] if auth_required else []
    )
    for operations in paths.values():
        for operation in operations.values():
            operation["security"] = security
            if auth_required:
                operation["responses"]["401"] = problem(
                    "Missing header, wrong scheme or unknown key (`WWW-Authenticate: Bearer`)."
                )
    auth_note = (
        "Lookup routes and /metrics need `Authorization: Bearer <key>` (any key of "
        f"VLMHOOKS_API_KEYS), or `?{ACCESS_TOKEN_PARAM}=<key>` on GET for browsers' "
        "EventSource (it can end up in logs: prefer the header)."
        if auth_required
        else "This deployment serves reads anonymously (VLMHOOKS_ALLOW_ANONYMOUS_READS=true)."
    )
    document = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "vlmhooks receiver",
            "version": API_VERSION,
            "description": "Receives VLM Run prediction callbacks and serves them back. "
            + auth_note,
        },
        "paths": {**paths, **public_paths()},
        "components": {
            "schemas": component_schemas(),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "accessToken": {"type": "apiKey", "in": "query", "name": ACCESS_TOKEN_PARAM},
            },
        },
    }
    add_console_paths(document, auth_required=auth_required)
    return document


def openapi_document(*, auth_required: bool) -> dict[str, Any]:
    """A fresh copy, so a caller that edits it cannot corrupt the cached one."""
    return copy.deepcopy(_document(auth_required))

"""Routes: being written (scaffold so the app composes; replaced in this change)."""

from __future__ import annotations

from starlette.routing import BaseRoute


def ops_routes() -> list[BaseRoute]:
    return []

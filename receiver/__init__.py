"""The vlmhooks web service: verified, durable, idempotent VLM Run callbacks, and their lookup."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from receiver.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import receiver.server.serverless` (a cold start) does not build the whole app
    # before the handler is asked to.
    if name == "create_app":
        from receiver.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

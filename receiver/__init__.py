"""The vlmhooks receiver: verified, durable, idempotent VLM Run callbacks, and their lookup."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from receiver.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import receiver.tokens` (used by the submitter) does not build the web stack.
    if name == "create_app":
        from receiver.app import create_app

        return create_app
    raise AttributeError(name)

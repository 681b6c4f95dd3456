"""The sandbox's exception tree; a prediction that cannot be made ends as status ``failed``.

SandboxError
├── PredictionFailed              bad image value, undecodable image, unusable config
│   ├── NoNetwork                 an http(s) image URL the sandbox will not fetch
│   └── LoopbackImageURL          an image URL on this machine; the caller may fetch it
├── FaultSyntaxError              a fault spec that does not parse (also a ValueError)
└── DemoError                     the demo cannot run: bad option, unusable database, a server

Configuration errors are the core's one `ConfigError` (vlmhooks.errors).
"""

from __future__ import annotations

__all__ = [
    "DemoError",
    "FaultSyntaxError",
    "LoopbackImageURL",
    "NoNetwork",
    "PredictionFailed",
    "SandboxError",
]


class SandboxError(Exception):
    """Root of every error the sandbox raises on purpose."""


class PredictionFailed(SandboxError):
    """The prediction cannot be made; ``image_index`` says which image, when one is to blame."""

    def __init__(self, message: str, *, image_index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.image_index = image_index


class NoNetwork(PredictionFailed):
    """An http(s) image URL on another host: the sandbox has no network."""

    def __init__(self, message: str, *, url: str, image_index: int | None = None) -> None:
        super().__init__(message, image_index=image_index)
        self.url = url


class LoopbackImageURL(PredictionFailed):
    """An http(s) image URL on 127.0.0.1/localhost/::1.

    ``decode_image_value`` does no I/O; a caller able to fetch (the sandbox server) catches
    this, fetches ``url`` itself and passes the bytes on. Left uncaught it fails the
    prediction like any other ``PredictionFailed``.
    """

    def __init__(self, message: str, *, url: str, image_index: int | None = None) -> None:
        super().__init__(message, image_index=image_index)
        self.url = url


class FaultSyntaxError(SandboxError, ValueError):
    """A fault spec that does not parse; the message says which item and why."""


class DemoError(SandboxError):
    """The demo cannot run (bad option, unusable database, a server that will not start)."""

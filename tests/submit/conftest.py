"""Submitter fixtures: small real images, the sandbox API and the receiver on loopback."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from sandbox import SandboxConfig, create_sandbox_app
from tests.servers import serve
from vlmhooks.settings import Settings
from vlmhooks.trust.tokens import CallbackTokens

API_KEY = "sk-sandbox-test"
SECRET_KEYS = ("callback-token-key-for-tests",)
LOOKUP_KEY = "lookup-key-for-tests"
# Callbacks retried quickly, so a test never waits on the sandbox's production backoff.
FAST_SANDBOX = {"backoff_base": 0.02, "delivery_timeout": 5.0, "api_keys": API_KEY}

SandboxFactory = Callable[..., AbstractContextManager[str]]


class CountingTransport(httpx.HTTPTransport):
    """Real HTTP, with every request counted (to prove what was, or was not, retried)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return super().handle_request(request)


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (24, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def image_files(tmp_path: Path) -> list[Path]:
    """Three small PNG files of different colors."""
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for index, color in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        path = folder / f"image-{index}.png"
        path.write_bytes(png_bytes(color))
        paths.append(path)
    return paths


@pytest.fixture
def sandbox() -> SandboxFactory:
    """`with sandbox(**config) as base_url:` runs the sandbox API; base_url ends in /v1."""

    @contextmanager
    def start(**overrides: Any) -> Iterator[str]:
        config = SandboxConfig(**{**FAST_SANDBOX, **overrides})
        with serve(create_sandbox_app(config)) as server:
            yield f"{server.url}/v1"

    return start


def receiver_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_keys": SECRET_KEYS,
        "api_keys": (LOOKUP_KEY,),
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
def receiver_url(database_url: str) -> Iterator[str]:
    """The receiver app on loopback, storing into the test's database."""
    from receiver.app import create_app  # imported here: the unit tests need no receiver

    with serve(create_app(receiver_settings(database_url))) as server:
        yield server.url


@pytest.fixture
def tokens() -> CallbackTokens:
    return CallbackTokens(list(SECRET_KEYS))


def wait_for(check: Callable[[], bool], *, timeout: float = 15.0, what: str = "") -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(0.02)


def no_sleep(_seconds: float) -> None:
    """Retries in tests record their delay instead of sleeping it."""

"""Sandbox test fixtures: the sandbox and a capturing callback receiver, both on real loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import httpx
import pytest

from sandbox import SandboxConfig, create_sandbox_app
from tests.sandbox.harness import FAST, CaptureReceiver
from tests.servers import serve


@pytest.fixture(scope="module")
def _capture_server() -> Iterator[CaptureReceiver]:
    # One receiver per module: stopping uvicorn costs ~0.2 s, and every sandbox is stopped
    # (its deliveries cancelled) before the next test, so nothing leaks between tests.
    receiver = CaptureReceiver()
    with serve(receiver.app()) as server:
        receiver.url = server.url
        yield receiver


@pytest.fixture
def capture(_capture_server: CaptureReceiver) -> CaptureReceiver:
    """A callback receiver on loopback, reset for this test."""
    _capture_server.reset()
    return _capture_server


SandboxFactory = Callable[..., AbstractContextManager[httpx.Client]]


@pytest.fixture
def sandbox() -> SandboxFactory:
    """`with sandbox(**config) as client:` runs a sandbox; `client` has base_url .../v1."""

    @contextmanager
    def start(**overrides: Any) -> Iterator[httpx.Client]:
        config = SandboxConfig(**{**FAST, **overrides})
        with (
            serve(create_sandbox_app(config)) as server,
            httpx.Client(base_url=f"{server.url}/v1", timeout=10) as client,
        ):
            yield client

    return start

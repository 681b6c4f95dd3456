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


@pytest.fixture
def capture() -> Iterator[CaptureReceiver]:
    receiver = CaptureReceiver()
    with serve(receiver.app()) as server:
        receiver.url = server.url
        yield receiver


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

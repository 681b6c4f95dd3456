"""The demo's two servers on loopback: the sandbox API and a receiver, under uvicorn in daemon
threads of this process, configured with fresh secrets that nothing outside the run knows."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import uvicorn
from pydantic import SecretStr
from rich.console import Console
from starlette.applications import Starlette

from receiver.app import create_app
from sandbox.app import create_sandbox_app
from sandbox.errors import DemoError
from sandbox.faults import FaultPlan
from sandbox.settings import SandboxConfig
from vlmhooks.settings import Settings

__all__ = [
    "LOOPBACK",
    "DemoSecrets",
    "DemoServers",
    "LoopbackServer",
    "bind_loopback",
    "receiver_settings",
    "serve_until_interrupted",
    "start_servers",
]

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 20.0
# Bounds shutdown when a long-poll is still open (after Ctrl-C, say).
GRACEFUL_SHUTDOWN_SECONDS = 2


@dataclass(frozen=True)
class DemoSecrets:
    """Fresh secrets for one run: nothing to configure, nothing reused between runs."""

    sandbox_api_key: str = field(repr=False)
    callback_token_key: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    lookup_api_key: str = field(repr=False)

    @classmethod
    def generate(cls) -> DemoSecrets:
        return cls(
            sandbox_api_key="sk-demo-" + secrets.token_urlsafe(24),
            callback_token_key=secrets.token_urlsafe(32),
            webhook_secret=secrets.token_urlsafe(32),
            lookup_api_key="lk-demo-" + secrets.token_urlsafe(24),
        )


class LoopbackServer:
    """An ASGI app under uvicorn in a daemon thread, on a socket bound before the app exists
    (so its URL can go into the app's own configuration)."""

    def __init__(self, name: str, sock: socket.socket) -> None:
        self.name = name
        self.sock = sock
        self.port = int(sock.getsockname()[1])
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, app: Starlette) -> None:
        # log_config=None: uvicorn leaves this process's logging alone; warnings still show.
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self.sock]},
            name=f"vlm-demo-{self.name}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise DemoError(f"the {self.name} did not start on {self.url}; see the log above")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=GRACEFUL_SHUTDOWN_SECONDS + 5)
        self.sock.close()


def bind_loopback() -> socket.socket:
    """A listening socket on a free loopback port, held until uvicorn takes it over."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((LOOPBACK, 0))
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise DemoError(f"cannot listen on {LOOPBACK}: {exc.strerror or exc}") from exc
    return sock


@dataclass(frozen=True)
class DemoServers:
    """Both servers, running; ``sandbox_config`` is what the sandbox was started with."""

    sandbox: LoopbackServer
    receiver: LoopbackServer
    sandbox_config: SandboxConfig

    @property
    def api_url(self) -> str:
        return f"{self.sandbox.url}/v1"


def start_servers(
    stack: ExitStack,
    config: SandboxConfig,
    plan: FaultPlan,
    database_url: str,
    demo_secrets: DemoSecrets,
) -> DemoServers:
    """Start the sandbox, then a receiver storing into ``database_url``; ``stack`` stops both."""
    sandbox = LoopbackServer("sandbox", bind_loopback())
    stack.callback(sandbox.stop)
    receiver = LoopbackServer("receiver", bind_loopback())
    stack.callback(receiver.stop)
    sandbox_config = config.model_copy(
        update={
            "api_keys": (SecretStr(demo_secrets.sandbox_api_key),),
            "vlmrun_webhook_secret": SecretStr(demo_secrets.webhook_secret),
            "standard_webhook_secret": None,
            "faults": plan.to_text(),
        }
    )
    sandbox.start(create_sandbox_app(sandbox_config))
    servers = DemoServers(sandbox, receiver, sandbox_config)
    settings = receiver_settings(database_url, receiver.url, servers.api_url, demo_secrets)
    receiver.start(create_app(settings))
    return servers


def receiver_settings(
    database_url: str, public_url: str, api_url: str, demo_secrets: DemoSecrets
) -> Settings:
    """The receiver's whole configuration, independent of the environment."""
    # Everything that decides whether a callback is accepted is set here, so a VLMHOOKS_*
    # variable left in the shell (another webhook secret, fetch-back) cannot break the demo.
    return Settings(
        database_url=database_url,
        public_url=public_url,
        secret_keys=(SecretStr(demo_secrets.callback_token_key),),
        vlmrun_webhook_secrets=(SecretStr(demo_secrets.webhook_secret),),
        standard_webhook_secrets=(),
        api_keys=(SecretStr(demo_secrets.lookup_api_key),),
        allow_anonymous_reads=False,
        fetch_back=False,
        # The demo shows callbacks arriving: its own lookups must not fetch a prediction from
        # the API before its callback lands (a `drop` fault heals by an explicit poll instead).
        read_through=False,
        vlmrun_api_key=SecretStr(demo_secrets.sandbox_api_key),
        vlmrun_base_url=api_url,
    )


def serve_until_interrupted(out: Console, servers: Sequence[LoopbackServer]) -> None:
    """Keep the servers up until Ctrl-C (or one of them stops)."""
    out.print("Both servers keep running; press Ctrl-C to stop them.")
    try:
        while all(server.alive for server in servers):
            time.sleep(0.2)
    except KeyboardInterrupt:
        # The expected way out: the demo's result stands, not 130.
        out.print("Stopping.")

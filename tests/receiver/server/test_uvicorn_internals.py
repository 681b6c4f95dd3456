"""receiver/server/protocol.py subclasses uvicorn's httptools protocol and reaches into it:
every name it relies on is listed here and checked against the installed uvicorn, so an
upgrade that drops one fails this test by name instead of failing a request at run time.
pyproject.toml pins uvicorn to the range these names were checked on.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

# Methods LimitedHttpProtocol overrides and calls through super().
PROTOCOL_METHODS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_headers_complete",
    "on_message_complete",
    "on_response_complete",
    "send_400_response",
    "timeout_keep_alive_handler",
    "shutdown",
)
# Attributes of a connected protocol it reads.
PROTOCOL_ATTRIBUTES = ("transport", "loop", "cycle", "app_state", "logger", "client")
# Attributes of the request's cycle it reads or replaces (the transport, with its own writer).
CYCLE_ATTRIBUTES = (
    "transport",
    "response_complete",
    "response_started",
    "disconnected",
    "message_event",
)


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _missing(target: object, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if not hasattr(target, name)]


def _explain(where: str, missing: list[str]) -> str:
    return (
        f"uvicorn {uvicorn.__version__} has no {', '.join(missing)} on {where}, which "
        "receiver/server/protocol.py relies on: adapt LimitedHttpProtocol to this uvicorn, "
        "then move the uvicorn range in pyproject.toml"
    )


def test_the_protocol_methods_overridden_exist() -> None:
    missing = [
        name for name in PROTOCOL_METHODS if not callable(getattr(HttpToolsProtocol, name, None))
    ]
    assert not missing, _explain("HttpToolsProtocol", missing)


def test_a_connected_protocol_and_its_request_cycle_have_the_attributes_read() -> None:
    async def connect_and_send_a_request() -> tuple[list[str], list[str]]:
        config = Config(app=_app, http="httptools", lifespan="off")
        protocol = HttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        ours, theirs = socket.socketpair()
        try:
            loop = asyncio.get_running_loop()
            await loop.connect_accepted_socket(lambda: protocol, ours)
            protocol.data_received(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            on_protocol = _missing(protocol, PROTOCOL_ATTRIBUTES)
            cycle = getattr(protocol, "cycle", None)
            on_cycle = ["(no cycle)"] if cycle is None else _missing(cycle, CYCLE_ATTRIBUTES)
            protocol.transport.close()
            await asyncio.sleep(0)  # lets the request's task and the close run
            return on_protocol, on_cycle
        finally:
            theirs.close()

    on_protocol, on_cycle = asyncio.run(connect_and_send_a_request())
    assert not on_protocol, _explain("a connected HttpToolsProtocol", on_protocol)
    assert not on_cycle, _explain("its RequestResponseCycle", on_cycle)

"""Blocking raw sockets for hostile-client tests: half-sent heads, dribbled bodies, idle peers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from receiver.app import create_app
from receiver.server.uvicorn_options import uvicorn_options
from tests.servers import UvicornThread, serve
from vlmhooks.settings import Settings

DEADLINE_SECONDS = 10.0


@contextmanager
def hardened_receiver(settings: Settings, **config: Any) -> Iterator[UvicornThread]:
    """The receiver under uvicorn configured exactly as `vlm-receiver serve` does."""
    options = {**uvicorn_options(settings, in_process=True), **config}
    options.setdefault("log_config", None)
    with serve(create_app(settings), **options) as server:
        yield server


def connect(server: UvicornThread) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_SECONDS)
    return sock


def read_until_closed(sock: socket.socket, deadline: float = DEADLINE_SECONDS) -> bytes:
    """Everything the server sends until it closes the connection; fails after `deadline`."""
    chunks: list[bytes] = []
    ends_at = time.monotonic() + deadline
    while True:
        left = ends_at - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the server kept the connection open; got {b''.join(chunks)!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            continue
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response[9:12])


def send_until_refused(sock: socket.socket, prefix: bytes, total: int) -> int:
    """Send `prefix` then filler up to `total` bytes; return how many were sent before the
    server closed the connection (the whole `total` when it never did)."""
    sent = 0
    block = b"a" * 65536
    with suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(prefix)
        sent = len(prefix)
        while sent < total:
            sock.sendall(block)
            sent += len(block)
    return sent

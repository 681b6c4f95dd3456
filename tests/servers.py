"""Real HTTP on loopback: run an ASGI app under uvicorn in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class UvicornThread:
    """Starts `app` on 127.0.0.1:<port>; `stop()` runs the lifespan shutdown."""

    def __init__(self, app: Any, port: int | None = None, **config: Any) -> None:
        # Bind here and hand uvicorn the socket: picking a "free" port and binding it later
        # races with other processes on the machine.
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", port or 0))
        self.port = int(self.socket.getsockname()[1])
        config.setdefault("log_level", "warning")
        self.config = uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="on", **config)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.socket.close()


@contextmanager
def serve(app: Any, port: int | None = None, **config: Any) -> Iterator[UvicornThread]:
    server = UvicornThread(app, port, **config).start()
    try:
        yield server
    finally:
        server.stop()

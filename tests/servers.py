"""Real HTTP on loopback: run an ASGI app under uvicorn in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
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


class PromptServer(uvicorn.Server):
    """uvicorn that stops as soon as it is told to.

    uvicorn notices `should_exit` on a 0.1 s tick and then sleeps 0.1 s more for connections
    it asked to close: ~0.15 s per stop, and the suite starts and stops about a thousand
    servers. Here `stop()` wakes the loop at once, and the sleep is skipped when no
    connection is open (with one open, uvicorn's own shutdown runs unchanged).
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        await super().startup(sockets=sockets)

    async def main_loop(self) -> None:
        assert self._wake is not None
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            # Still ticks every 0.1 s (the Date header, max requests), but wakes on stop.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.server_state.connections:
            await super().shutdown(sockets=sockets)
            return
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        await self._wait_tasks_to_complete()
        if not self.force_exit:
            await self.lifespan.shutdown()

    def request_stop(self) -> None:
        """Thread-safe: exit now rather than on the next tick."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(wake.set)


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
        self.server = PromptServer(self.config)
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
        self.server.request_stop()
        self.thread.join(timeout=20)
        self.socket.close()


@contextmanager
def serve(app: Any, port: int | None = None, **config: Any) -> Iterator[UvicornThread]:
    server = UvicornThread(app, port, **config).start()
    try:
        yield server
    finally:
        server.stop()

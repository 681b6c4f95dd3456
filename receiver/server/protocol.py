"""uvicorn's httptools protocol with the limits httptools lacks (README, "Limits").

httptools buffers a request line and headers for as long as a client sends them, and
uvicorn times out only idle keep-alive connections. This subclass caps the request head
(431 at once, the rest never read), closes a connection whose head or body does not
arrive in time (408), and tells the app when the server starts shutting down, so open
long polls and event streams can answer before the graceful-shutdown budget runs out.

It also sends a response's head and body in one write (`_CoalescedWrites`): uvicorn
writes them separately, and on a short response each write is a `send()` of its own, a
large share of the event loop's time under callback load (bench/README.md, "Issue 13,
third pass", "One write per response").
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from receiver.state import SHUTDOWN_HOOK
from vlmhooks.settings import (
    DEFAULT_BODY_TIMEOUT_SECONDS,
    DEFAULT_HEADER_TIMEOUT_SECONDS,
    DEFAULT_MAX_HEADER_BYTES,
    Settings,
    load_settings,
)

__all__ = ["HttpLimits", "LimitedHttpProtocol", "limited_protocol"]

PROBLEM_TYPE_BASE = "https://vlmhooks.dev/problems/"


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    header_timeout: float = DEFAULT_HEADER_TIMEOUT_SECONDS
    body_timeout: float = DEFAULT_BODY_TIMEOUT_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(settings.max_header_bytes, settings.header_timeout, settings.body_timeout)


def _problem(status: int, title: str, slug: str, detail: str) -> bytes:
    body = orjson.dumps(
        {"type": PROBLEM_TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    )
    head = (
        f"HTTP/1.1 {status} {title}\r\n"
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class LimitedHttpProtocol(HttpToolsProtocol):
    """One connection; `limits` None means "read VLMHOOKS_* from the environment".

    `vlm-receiver serve` names this class by import path, because uvicorn's worker
    processes import it afresh; a test builds a subclass with `limited_protocol(limits)`.
    """

    limits: ClassVar[HttpLimits | None] = None
    _environment_limits: ClassVar[HttpLimits | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = self._resolve_limits()
        # Bytes of the current request head received so far; reset when the head ends.
        self._reading_head = True
        self._head_bytes = 0
        # One lazy timer per connection instead of two timers armed and cancelled per
        # request: each request only moves `_deadline` (see `_check_deadline`).
        self._waiting_for: Literal["head", "body"] | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._period = min(self._limits.header_timeout, self._limits.body_timeout)
        self._writes: _CoalescedWrites | None = None

    @classmethod
    def _resolve_limits(cls) -> HttpLimits:
        if cls.limits is not None:
            return cls.limits
        if LimitedHttpProtocol._environment_limits is None:
            LimitedHttpProtocol._environment_limits = HttpLimits.from_settings(load_settings())
        return LimitedHttpProtocol._environment_limits

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        _no_delay(transport)
        self._writes = _CoalescedWrites(transport, self.loop)
        # uvicorn arms no timer before the first byte: a silent connection would stay forever.
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._waiting_for = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused or timed out: nothing more is parsed or buffered
        if not self._reading_head:
            # Body bytes (bounded by the app's own cap). Should a pipelined request's head
            # start in this chunk, its first bytes go uncounted: at most one read's worth.
            super().data_received(data)
            return
        room = self._limits.max_header_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        # Feed only what still fits: either the head ends inside it, or it is too large.
        self._head_bytes = self._limits.max_header_bytes
        if room > 0:
            super().data_received(data[:room])
        if self.transport.is_closing():
            return
        if self._reading_head:
            self._refuse_head()
            return
        super().data_received(data[room:])

    # httptools parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_bytes = 0
        self._expect("body", self._limits.body_timeout)
        super().on_headers_complete()
        if self.cycle is not None and self._writes is not None:
            # Before its task first runs: every write of the response goes through it.
            self.cycle.transport = cast(asyncio.Transport, self._writes)

    def on_message_complete(self) -> None:
        self._waiting_for = None
        self._reading_head = True
        self._head_bytes = 0
        super().on_message_complete()

    # uvicorn's own writes and closes: what a response holds goes out first, in order

    def on_response_complete(self) -> None:
        self._flush_writes()  # a whole response: out now, in one write
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        self._flush_writes()
        super().send_400_response(msg)

    def timeout_keep_alive_handler(self) -> None:
        self._flush_writes()
        super().timeout_keep_alive_handler()

    def _flush_writes(self) -> None:
        if self._writes is not None:
            self._writes.flush()

    # uvicorn server

    def shutdown(self) -> None:
        hook: Callable[[], None] | None = self.app_state.get(SHUTDOWN_HOOK)
        if hook is not None:
            hook()  # idempotent: called once per open connection
        self._flush_writes()
        super().shutdown()

    # limits

    def _refuse_head(self) -> None:
        self.logger.warning(
            "request head over %d bytes from %s: refused with 431",
            self._limits.max_header_bytes,
            self.client[0] if self.client else "?",
        )
        self._close_with(
            _problem(
                431,
                "Request Header Fields Too Large",
                "header-too-large",
                f"the request line and headers exceed {self._limits.max_header_bytes} bytes",
            )
        )

    def _head_timed_out(self) -> None:
        if self.transport.is_closing():
            return
        detail = f"the request head did not arrive within {self._limits.header_timeout:g} s"
        self._close_with(_problem(408, "Request Timeout", "request-timeout", detail))

    def _body_timed_out(self) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_complete:
            # Answered without reading the body (e.g. a 401); the rest is not worth waiting for.
            self.transport.close()
            return
        detail = f"the request body did not arrive within {self._limits.body_timeout:g} s"
        self._close_with(_problem(408, "Request Timeout", "request-timeout", detail))

    def _close_with(self, response: bytes) -> None:
        self._flush_writes()
        cycle = self.cycle
        answering = False
        if cycle is not None and not cycle.response_complete:
            # The app may still be reading the body or about to answer: from now on its
            # receive() says "disconnected" and its sends are dropped.
            answering = cycle.response_started
            cycle.disconnected = True
            cycle.message_event.set()
        if not answering:  # a half-sent response must not be followed by another
            self.transport.write(response)
        self.transport.close()

    def _arm_head_timer(self) -> None:
        if self._waiting_for != "head":
            self._expect("head", self._limits.header_timeout)

    def _expect(self, part: Literal["head", "body"], within: float) -> None:
        self._waiting_for = part
        self._deadline = self.loop.time() + within
        if self._timer is None:
            self._timer = self.loop.call_later(min(within, self._period), self._check_deadline)

    def _check_deadline(self) -> None:
        """The lazy timer: time out what is overdue, else look again.

        It never fires later than a deadline: it is armed at most `_period` (the shorter
        timeout) ahead, and any deadline set meanwhile is at least that far off; when it
        re-arms, it does so at the deadline or one period ahead, whichever comes first.
        An idle keep-alive connection (nothing awaited) lets it lapse.
        """
        self._timer = None
        part = self._waiting_for
        if part is None:
            return
        now = self.loop.time()
        if now < self._deadline:
            delay = min(self._deadline - now, self._period)
            self._timer = self.loop.call_later(delay, self._check_deadline)
        elif part == "head":
            self._head_timed_out()
        else:
            self._body_timed_out()


_JOIN_LIMIT = 64 * 1024


class _CoalescedWrites:
    """The transport as a response sees it: writes made in one step of the event loop go
    out as one `send()`.

    uvicorn writes a response's head, then its body. The first write is held; the protocol
    flushes when the response completes (one `send()` for a whole response), and before any
    write or close of its own, so nothing is reordered or dropped. A streamed response's
    head or chunk is flushed by a callback at the loop's next turn at the latest.
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if len(data) > _JOIN_LIMIT:
            # A large body goes out as it is: copying it to join the head costs more than
            # the second send, and would double the memory it takes.
            self.flush()
            if not self._transport.is_closing():
                self._transport.write(data)
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(data)

    def flush(self) -> None:
        held = self._held
        if not held:
            return
        self._held = []
        if not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


def _no_delay(transport: asyncio.Transport) -> None:
    """TCP_NODELAY on the connection, whatever the listening socket was.

    asyncio sets it only on sockets whose `proto` says TCP. With `--workers N`, uvicorn's
    workers accept on a socket rebuilt from an inherited descriptor, whose `proto` is 0, so
    Nagle stayed on: the response body, written after its head, waited for the client's
    delayed ACK on every request (bench/README.md, "Issue 13, second pass").
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def limited_protocol(limits: HttpLimits) -> type[LimitedHttpProtocol]:
    """A protocol class bound to explicit limits (one server in this process, e.g. a test)."""
    return type("BoundLimitedHttpProtocol", (LimitedHttpProtocol,), {"limits": limits})

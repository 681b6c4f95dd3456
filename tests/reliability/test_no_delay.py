"""Responses are not held back by Nagle's algorithm, however the listening socket was made.

With `--workers N`, uvicorn's workers accept on a socket rebuilt with `socket.fromfd`, whose
`proto` is 0; asyncio then leaves TCP_NODELAY off, and a response body written after its
head waited for the client's delayed ACK (40 ms a request; bench/README.md).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from receiver.server.protocol import _no_delay


@contextmanager
def accepted_like_a_worker() -> Iterator[socket.socket]:
    """A connection accepted on a listener rebuilt from its descriptor, as uvicorn's
    multiprocess workers do."""
    with socket.create_server(("127.0.0.1", 0)) as original:
        rebuilt = socket.fromfd(original.fileno(), socket.AF_INET, socket.SOCK_STREAM)
        with rebuilt, socket.create_connection(original.getsockname()):
            accepted, _ = rebuilt.accept()
            with accepted:
                yield accepted


def _nodelay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


class _Transport(asyncio.Transport):
    def __init__(self, sock: socket.socket) -> None:
        super().__init__({"socket": sock})


def test_asyncio_leaves_nagle_on_for_such_a_socket() -> None:
    # The premise: asyncio's own TCP_NODELAY is skipped for a socket whose proto is 0.
    with accepted_like_a_worker() as sock:
        assert sock.proto == 0
        assert _nodelay(sock) == 0


def test_the_protocol_turns_nagle_off_on_every_connection() -> None:
    with accepted_like_a_worker() as sock:
        _no_delay(_Transport(sock))
        assert _nodelay(sock) != 0


def test_a_transport_without_a_tcp_socket_is_left_alone() -> None:
    _no_delay(_Transport(None))  # type: ignore[arg-type]
    left, right = socket.socketpair()
    with left, right:
        _no_delay(_Transport(left))  # a Unix socket: no TCP option to set, no error

"""A response's head and body leave in one write, over real sockets (receiver/server/protocol.py).

uvicorn writes a head and then a body; on a short response each was a `send()` of its
own, a fifth of the event loop's time under callback load. These tests count the writes
that reach the connection's real transport, and check that a streamed response's head
is not held back waiting for a body.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, ClassVar

import httpx
import orjson

from receiver.server.protocol import HttpLimits, _CoalescedWrites, limited_protocol
from tests.receiver.callback_harness import JSON_HEADERS, mint, prediction_body
from tests.reliability.rawsocket import hardened_receiver
from vlmhooks.settings import Settings

KEY = "one-write-key"


class _CountingTransport:
    """The real transport, with every write recorded."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _counting_protocol(writes: list[bytes], at_completion: list[int] | None = None) -> type:
    base = limited_protocol(HttpLimits())

    class Counting(base):  # type: ignore[valid-type,misc]
        recorded: ClassVar[list[bytes]] = writes

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(_CountingTransport(transport, self.recorded))  # type: ignore[arg-type]

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if at_completion is not None:  # what had reached the socket, without a loop turn
                at_completion.append(len(self.recorded))

    return Counting


def _settings(sqlite_url: str) -> Settings:
    return Settings(database_url=sqlite_url, secret_keys=(KEY,), allow_anonymous_reads=True)


def test_each_response_on_a_kept_alive_connection_is_one_write(sqlite_url: str) -> None:
    writes: list[bytes] = []
    with (
        hardened_receiver(_settings(sqlite_url), http=_counting_protocol(writes)) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        token = mint("sub_w", keys=(KEY,))
        body = orjson.dumps(prediction_body(prediction_id="pred_w"))
        ack = client.post(f"/v1/callbacks/{token}", content=body, headers=JSON_HEADERS)
        health = client.get("/healthz")
        missing = client.get("/v1/predictions/pred_nope")
    assert ack.status_code == 200 and ack.json()["id"] == "pred_w"
    assert health.status_code == 200
    assert missing.status_code == 404
    # Three responses, three writes, each a whole response: head and body together.
    assert len(writes) == 3, [w[:40] for w in writes]
    for write, response in zip(writes, (ack, health, missing), strict=True):
        head, _, rest = write.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d " % response.status_code)
        assert rest == response.content


def test_a_complete_response_is_written_before_uvicorn_moves_on(sqlite_url: str) -> None:
    """Not at the loop's next turn: a shutdown or a close in between would drop it."""
    writes: list[bytes] = []
    at_completion: list[int] = []
    protocol = _counting_protocol(writes, at_completion)
    with (
        hardened_receiver(_settings(sqlite_url), http=protocol) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        assert client.get("/healthz").status_code == 200
        assert client.get("/healthz").status_code == 200
    assert at_completion == [1, 2]


def test_a_streamed_head_is_not_held_for_a_body(sqlite_url: str) -> None:
    # No event will come: the head must still arrive on its own, promptly.
    with (
        hardened_receiver(_settings(sqlite_url)) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock,
    ):
        sock.sendall(b"GET /v1/events HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(4096)
            assert chunk, "closed before the head"
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 ")
    assert b"text/event-stream" in received


class _RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert isinstance(data, bytes)
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def _turn() -> None:
    await asyncio.sleep(0)


def test_writes_in_one_step_are_joined_and_later_ones_are_not() -> None:
    async def scenario() -> list[bytes]:
        transport = _RecordingTransport()
        writes = _CoalescedWrites(transport, asyncio.get_running_loop())
        writes.write(b"head;")
        writes.write(b"body")
        assert transport.writes == []  # held until the loop turns
        await _turn()
        writes.write(b"chunk")
        await _turn()
        return transport.writes

    assert asyncio.run(scenario()) == [b"head;body", b"chunk"]


def test_close_flushes_first_and_nothing_is_written_after_it() -> None:
    async def scenario() -> _RecordingTransport:
        transport = _RecordingTransport()
        writes = _CoalescedWrites(transport, asyncio.get_running_loop())
        writes.write(b"last words")
        writes.close()
        writes.write(b"too late")
        await _turn()
        return transport

    transport = asyncio.run(scenario())
    assert transport.writes == [b"last words"]
    assert transport.closed


def test_a_large_body_follows_the_head_uncopied() -> None:
    big = b"x" * (1024 * 1024)

    async def scenario() -> list[bytes]:
        transport = _RecordingTransport()
        writes = _CoalescedWrites(transport, asyncio.get_running_loop())
        writes.write(b"head;")
        writes.write(big)
        assert transport.writes == [b"head;", big]  # at once, in order
        await _turn()
        return transport.writes

    sent = asyncio.run(scenario())
    assert len(sent) == 2
    assert sent[1] is big  # not joined: no copy of a large body

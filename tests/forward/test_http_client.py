"""The forwarding HTTP client against raw servers: chunked and close-delimited answers,
1xx interim answers, and a kept-alive connection the server closed meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from vlmhooks.forward.http_client import HttpClientError, HttpTimeout, OriginClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


async def _with_server(handler: Handler, test: Callable[[str], Awaitable[None]]) -> None:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await test(f"http://user:pa%3Ass@127.0.0.1:{port}/hook?x=1")


def test_answers_of_every_framing_on_one_connection() -> None:
    requests: list[bytes] = []
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        answers = [
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n"
            b"4\r\nbusy\r\n0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 410 Gone\r\nConnection: close\r\n\r\ngone for good",
        ]
        for answer in answers:
            try:
                requests.append(await _read_request(reader))
            except asyncio.IncompleteReadError:
                break
            writer.write(answer)
            await writer.drain()
        writer.close()

    async def test(url: str) -> None:
        client = OriginClient(url, timeout=5)
        statuses = []
        for _ in range(4):
            response = await client.post(b"{}", {"webhook-id": "msg_1"})
            statuses.append((response.status, response.headers.get("retry-after")))
        await client.aclose()
        assert statuses == [(200, None), (503, "3"), (204, None), (410, None)]

    asyncio.run(_with_server(handler, test))
    assert connections == 1  # kept alive until the server said close
    first = requests[0].decode()
    assert first.startswith("POST /hook?x=1 HTTP/1.1\r\n")
    assert "authorization: Basic dXNlcjpwYTpzcw==" in first  # user:pa:ss, unquoted
    assert "content-length: 2" in first and first.endswith("{}")


def test_a_kept_alive_connection_closed_by_the_server_is_replaced_once() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        # Says nothing about closing, then closes: the client finds out on reuse.
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def test(url: str) -> None:
        client = OriginClient(url, timeout=5)
        first = await client.post(b"{}", {})
        await asyncio.sleep(0.05)  # let the close arrive (a test of reuse, not a sync)
        second = await client.post(b"{}", {})
        await client.aclose()
        assert (first.status, second.status) == (200, 200)

    asyncio.run(_with_server(handler, test))
    assert connections == 2


def test_garbage_is_a_protocol_error_and_silence_a_timeout() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        writer.close()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read_request(reader)
            await reader.read()  # until the client gives up and closes
        finally:
            writer.close()

    async def expect_protocol_error(url: str) -> None:
        with pytest.raises(HttpClientError):
            await OriginClient(url, timeout=5).post(b"{}", {})

    async def expect_timeout(url: str) -> None:
        with pytest.raises(HttpTimeout):
            await OriginClient(url, timeout=0.2).post(b"{}", {})

    asyncio.run(_with_server(garbage, expect_protocol_error))
    asyncio.run(_with_server(silent, expect_timeout))


def test_bare_lf_answers_are_read_and_the_connection_kept() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for answer in (b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: 1\n\nok", b"HTTP/1.1 204 x\n\n"):
            await _read_request(reader)
            writer.write(answer)
            await writer.drain()
        writer.close()

    async def test(url: str) -> None:
        client = OriginClient(url, timeout=5)
        first = await client.post(b"{}", {})
        second = await client.post(b"{}", {})
        await client.aclose()
        assert (first.status, first.headers.get("x-a"), second.status) == (200, "1", 204)

    asyncio.run(_with_server(handler, test))
    assert connections == 1


def test_a_post_is_not_sent_again_once_part_of_an_answer_came() -> None:
    requests = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        await _read_request(reader)
        requests += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await _read_request(reader)
        requests += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Le")  # then gone, mid-answer
        await writer.drain()
        writer.close()

    async def test(url: str) -> None:
        client = OriginClient(url, timeout=5)
        assert (await client.post(b"{}", {})).status == 200
        with pytest.raises(HttpClientError, match="mid-answer"):
            await client.post(b"{}", {})  # on the kept-alive connection

    asyncio.run(_with_server(handler, test))
    assert requests == 2


OK = b"HTTP/1.1 200 OK\r\n"


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 70_000 + b"\r\n\r\n", id="head-too-large"
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", id="bad-length"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", id="bad-chunk"
        ),
    ],
)
def test_an_unreadable_answer_is_one_typed_error(answer: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read_request(reader)
            writer.write(answer)
            await writer.drain()
            await reader.read()
        except ConnectionError:
            pass  # the client hung up mid-answer, as it should
        finally:
            writer.close()

    async def test(url: str) -> None:
        with pytest.raises(HttpClientError):
            await OriginClient(url, timeout=5).post(b"{}", {})

    asyncio.run(_with_server(handler, test))


def test_a_refused_connection_is_one_typed_error() -> None:
    async def test() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(HttpClientError, match="cannot connect"):
            await OriginClient(f"http://127.0.0.1:{port}/", timeout=5).post(b"{}", {})

    asyncio.run(test())

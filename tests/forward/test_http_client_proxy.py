"""The forwarding client through a real tinyproxy: a CONNECT tunnel with TLS inside it for
https, absolute-form requests for http; NO_PROXY read as curl reads it."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.forward.tinyproxy import self_signed_certificate, tinyproxy
from vlmhooks.forward.http_client import HttpClientError, OriginClient, proxy_for

ANSWER = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"


async def _serve(
    requests: list[bytes], tls: ssl.SSLContext | None, test: Callable[[int], Awaitable[None]]
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = [line for line in head.lower().split(b"\r\n") if b"content-length" in line]
                body = await reader.readexactly(int(length[0].split(b":")[1]))
                requests.append(head + body)
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
    async with server:
        await test(server.sockets[0].getsockname()[1])


def _tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = self_signed_certificate(tmp_path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


def test_https_goes_through_a_connect_tunnel_with_tls_inside(tmp_path: Path) -> None:
    server_tls, client_tls = _tls(tmp_path)
    requests: list[bytes] = []
    log = ""

    async def test(port: int) -> None:
        nonlocal log
        with tinyproxy(tmp_path, connect_port=port) as proxy:
            environ = {"HTTPS_PROXY": proxy.url}
            url = f"https://127.0.0.1:{port}/hook"
            client = OriginClient(url, timeout=5, environ=environ, ssl_context=client_tls)
            statuses = [(await client.post(b"{}", {})).status for _ in range(2)]
            await client.aclose()
            assert statuses == [202, 202]
            log = proxy.log.read_text()

    asyncio.run(_serve(requests, server_tls, test))
    assert len(requests) == 2
    assert requests[0].startswith(b"POST /hook HTTP/1.1\r\n")  # origin-form inside the tunnel
    assert "CONNECT" in log and "127.0.0.1" in log


def test_http_is_sent_to_the_proxy_in_absolute_form(tmp_path: Path) -> None:
    requests: list[bytes] = []

    async def test(port: int) -> None:
        with tinyproxy(tmp_path, connect_port=port) as proxy:
            environ = {"http_proxy": proxy.url, "NO_PROXY": "example.com"}
            client = OriginClient(f"http://127.0.0.1:{port}/hook?x=1", timeout=5, environ=environ)
            assert (await client.post(b"{}", {"webhook-id": "msg_1"})).status == 202
            await client.aclose()

    asyncio.run(_serve(requests, None, test))
    head = requests[0].decode().lower()
    assert head.startswith("post /hook?x=1 http/1.1\r\n")  # tinyproxy rewrote it to origin-form
    assert "via: " in head and "tinyproxy" in head  # so it did pass through the proxy
    assert "webhook-id: msg_1" in head


def test_a_tunnel_the_proxy_refuses_is_a_client_error(tmp_path: Path) -> None:
    server_tls, client_tls = _tls(tmp_path)

    async def test(port: int) -> None:
        with tinyproxy(tmp_path, connect_port=port + 1 if port < 65535 else 1) as proxy:
            environ = {"HTTPS_PROXY": proxy.url}
            url = f"https://127.0.0.1:{port}/hook"
            client = OriginClient(url, timeout=5, environ=environ, ssl_context=client_tls)
            with pytest.raises(HttpClientError, match="proxy refused the tunnel: HTTP 403"):
                await client.post(b"{}", {})

    asyncio.run(_serve([], server_tls, test))


def test_no_proxy_hosts_are_reached_directly() -> None:
    requests: list[bytes] = []

    async def test(port: int) -> None:
        # The proxy named is a closed port: only a direct connection can succeed.
        environ = {"HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "localhost, 127.0.0.1"}
        client = OriginClient(f"http://127.0.0.1:{port}/hook", timeout=5, environ=environ)
        assert (await client.post(b"{}", {})).status == 202
        await client.aclose()

    asyncio.run(_serve(requests, None, test))
    assert requests[0].startswith(b"POST /hook HTTP/1.1\r\n")


P = "http://proxy:3128"


@pytest.mark.parametrize(
    ("url", "environ", "expected"),
    [
        ("https://hooks.example.com/x", {"HTTPS_PROXY": P}, P),
        ("https://hooks.example.com/x", {"https_proxy": P, "HTTPS_PROXY": "other"}, P),
        ("https://hooks.example.com/x", {"HTTP_PROXY": P}, None),
        ("http://hooks.example.com/x", {"HTTP_PROXY": P}, P),
        ("http://hooks.example.com/x", {"HTTP_PROXY": P, "NO_PROXY": "*"}, None),
        ("http://hooks.example.com/x", {"HTTP_PROXY": P, "NO_PROXY": "example.com"}, None),
        ("http://hooks.example.com/x", {"HTTP_PROXY": P, "no_proxy": ".example.com"}, None),
        ("http://hooks.example.com/x", {"HTTP_PROXY": P, "NO_PROXY": "ample.com"}, P),
        ("http://hooks.example.com/x", {"HTTP_PROXY": P, "NO_PROXY": "example.com:80"}, None),
        ("http://hooks.example.com:81/x", {"HTTP_PROXY": P, "NO_PROXY": "example.com:80"}, P),
        ("http://[::1]:8080/x", {"HTTP_PROXY": P, "NO_PROXY": "[::1]:8080"}, None),
        ("http://[::1]:8080/x", {"HTTP_PROXY": P, "NO_PROXY": "::1"}, None),
        ("http://10.0.0.1/x", {"HTTP_PROXY": P, "NO_PROXY": "10.0.0.2"}, P),
    ],
)
def test_which_proxy_the_environment_names(
    url: str, environ: dict[str, str], expected: str | None
) -> None:
    assert proxy_for(url, environ) == expected

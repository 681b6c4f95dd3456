"""A small HTTP/1.1 client for POSTing to one origin over kept-alive connections.

Why not httpx: the relay runs inside the receiver's process, on the same core as ingest,
and httpx's client stack cost many times the CPU per request of plain asyncio streams
(bench/README.md, "Forwarding: ingest cost of one HTTP destination, commit → destination
latency"). Forwarding needs one method, one origin, Content-Length bodies and a status line,
so this is that.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["HttpResponse", "OriginClient", "ProtocolError"]

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024  # a webhook answer is read only to keep the connection usable


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 we can read."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-cased names; the last value wins


_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class OriginClient:
    def __init__(self, url: str, *, timeout: float, max_connections: int = 32) -> None:
        parts = urlsplit(url)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._tls else 80)
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default_port = self._port == (443 if self._tls else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default_port else f"{host}:{self._port}"
        self._authorization: str | None = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self._authorization = "Basic " + base64.b64encode(pair.encode()).decode()
        self._timeout = timeout
        self._ssl = ssl.create_default_context() if self._tls else None
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def post(self, body: bytes, headers: dict[str, str]) -> HttpResponse:
        head = [f"POST {self._target} HTTP/1.1", f"host: {self._host_header}"]
        if self._authorization is not None:
            head.append(f"authorization: {self._authorization}")
        head += [f"{name}: {value}" for name, value in headers.items()]
        head.append(f"content-length: {len(body)}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        async with self._slots, asyncio.timeout(self._timeout):
            reused = bool(self._idle)
            connection = self._idle.pop() if reused else await self._connect()
            try:
                response, keep = await self._exchange(connection, request)
            except (OSError, asyncio.IncompleteReadError, ProtocolError):
                _close(connection)
                if not reused:
                    raise
                # A kept-alive connection the server closed meanwhile: once more, fresh.
                connection = await self._connect()
                try:
                    response, keep = await self._exchange(connection, request)
                except BaseException:
                    _close(connection)
                    raise
            except BaseException:
                _close(connection)
                raise
        if keep:
            self._idle.append(connection)
        else:
            _close(connection)
        return response

    async def _connect(self) -> _Connection:
        return await asyncio.open_connection(
            self._host, self._port, ssl=self._ssl, server_hostname=self._host if self._tls else None
        )

    async def _exchange(self, connection: _Connection, request: bytes) -> tuple[HttpResponse, bool]:
        reader, writer = connection
        writer.write(request)
        await writer.drain()
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > MAX_HEAD_BYTES:
                raise ProtocolError("response head too large")
            status, headers = _parse_head(head)
            if status >= 200:
                break  # 1xx (say, 100 Continue) are followed by the real answer
        keep = headers.get("connection", "").lower() != "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            await _skip_chunked(reader)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length > MAX_BODY_BYTES:
                keep = False
            else:
                await reader.readexactly(length)
        elif status not in (204, 304):
            keep = False  # the body runs to the end of the connection; not worth reading
        return HttpResponse(status, headers), keep

    async def aclose(self) -> None:
        while self._idle:
            _close(self._idle.pop())


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return int(code), headers


async def _skip_chunked(reader: asyncio.StreamReader) -> None:
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError as exc:
            raise ProtocolError("bad chunk size") from exc
        total += size
        if total > MAX_BODY_BYTES:
            raise ProtocolError("response body too large")
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return
        await reader.readexactly(size + 2)


def _close(connection: _Connection) -> None:
    with contextlib.suppress(Exception):
        connection[1].close()

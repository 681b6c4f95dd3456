"""A minimal keep-alive HTTP/1.1 client on asyncio streams, for load with many connections.

httpx's async pool slows down as connections are added (109 req/s with 32 workers against
a bare Starlette endpoint on this machine, 365 with one), which would make the storm time
the client. This client writes each request in one go and reads `Content-Length` bodies:
all a uvicorn answer needs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass


class RawHTTPError(Exception):
    """The server's answer was not a complete HTTP/1.1 response this client can read."""


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class RawConnection:
    """One connection, reopened when the server closes it; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> RawResponse:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        lines.append(f"content-length: {len(body)}")
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await self._writer.drain()
        response = await read_response(self._reader)
        if response.headers.get("connection", "").lower() == "close":
            await self.close()
        return response

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


async def read_response(reader: asyncio.StreamReader) -> RawResponse:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise RawHTTPError(f"no complete response head: {exc}") from exc
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise RawHTTPError(f"bad status line {status_line!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise RawHTTPError("chunked responses are not supported")
    length = int(headers.get("content-length", "0"))
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise RawHTTPError(f"body ended after {len(exc.partial)} of {length} bytes") from exc
    return RawResponse(int(parts[1]), headers, body)

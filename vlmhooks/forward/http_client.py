"""A small HTTP/1.1 client for POSTing to one origin over kept-alive connections.

Why not httpx: the relay runs inside the receiver's process, on the same core as ingest,
and httpx's client stack cost many times the CPU per request of plain asyncio streams
(bench/README.md, "Forwarding: ingest cost of one HTTP destination, commit → destination
latency", and "Issue 29: the forwarding client parses with httptools"). Forwarding needs one
method, one origin and Content-Length bodies; responses are parsed by httptools (llhttp, the
parser under uvicorn and Node.js), through a proxy when the environment names one.

Every failure is an `HttpClientError`:

    HttpClientError          could not POST, or could not read the answer
    └── HttpTimeout          no whole answer within the timeout
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

import httptools

__all__ = ["HttpClientError", "HttpResponse", "HttpTimeout", "OriginClient", "proxy_for"]

MAX_HEAD_BYTES = 64 * 1024  # a status line and headers; more is not a webhook answer
MAX_BODY_BYTES = 1024 * 1024  # a webhook answer is read only to keep the connection usable
_READ_SIZE = MAX_HEAD_BYTES


class HttpClientError(Exception):
    """The POST could not be made, or its answer is not HTTP/1.1 we can read."""


class HttpTimeout(HttpClientError):
    """No whole answer within the client's timeout."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-cased names; the last value wins


@dataclass(frozen=True)
class _Proxy:
    host: str
    port: int
    authorization: str | None


def proxy_for(url: str, environ: Mapping[str, str]) -> str | None:
    """The proxy URL `environ` names for `url`, as curl reads it: `https_proxy` for https,
    `http_proxy` for http (lower case first, then upper), none for a host `no_proxy` lists
    (`*`, a host, or a domain and its subdomains, each with an optional `:port`)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    proxy = environ.get(f"{scheme}_proxy") or environ.get(f"{scheme.upper()}_PROXY")
    if not proxy:
        return None
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if scheme == "https" else 80)
    for entry in (environ.get("no_proxy") or environ.get("NO_PROXY") or "").split(","):
        entry = entry.strip().lower()
        if entry == "*":
            return None
        name, entry_port = entry, ""
        if entry.count(":") == 1 or entry.startswith("["):  # host:port, [v6] or [v6]:port
            before, _, after = entry.rpartition(":")
            if before and after.isdigit():
                name, entry_port = before, after
        name = name.lstrip(".").strip("[]")
        matches = bool(name) and (host == name or host.endswith("." + name))
        if matches and (not entry_port or int(entry_port) == port):
            return None
    return proxy


def _basic(parts: SplitResult) -> str | None:
    if parts.username is None:
        return None
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _parse_proxy(url: str) -> _Proxy:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"proxy must be an http:// URL with a host, not {parts.scheme}://")
    return _Proxy(parts.hostname, parts.port or 80, _basic(parts))


class _Answer:
    """httptools' callbacks for one response; the parser lives as long as the connection."""

    __slots__ = ("body_bytes", "complete", "head_done", "headers", "keep_alive", "parser", "status")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        # Servers that end lines with a bare LF are read too (RFC 9112, section 2.2).
        self.parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
        self.reset()

    def reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.head_done = False
        self.keep_alive = False
        self.complete = False
        self.body_bytes = 0

    def on_message_begin(self) -> None:
        self.reset()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1").strip()

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        # llhttp answers this only while the message is being read, not once it is complete.
        self.keep_alive = self.parser.should_keep_alive()
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)

    def on_message_complete(self) -> None:
        self.complete = True


class _Connection:
    __slots__ = ("answer", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.answer = _Answer()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _NothingReceived(HttpClientError):
    """The connection failed before a byte of the answer came: safe to send again."""


class OriginClient:
    """POSTs to `url`; `environ` (say, `os.environ`) may name a proxy (`proxy_for`)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        max_connections: int = 32,
        environ: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._tls else 80)
        default_port = self._port == (443 if self._tls else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default_port else f"{host}:{self._port}"
        self._authority = f"{host}:{self._port}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        proxy_url = proxy_for(url, environ or {})
        self._proxy = _parse_proxy(proxy_url) if proxy_url else None
        # Through a proxy, plain http is sent to it in absolute form; https is tunnelled.
        if self._proxy is not None and not self._tls:
            target = f"http://{self._authority}{target}"
        head = f"POST {target} HTTP/1.1\r\nhost: {self._host_header}\r\n"
        authorization = _basic(parts)
        if authorization is not None:
            head += f"authorization: {authorization}\r\n"
        if self._proxy is not None and self._proxy.authorization and not self._tls:
            head += f"proxy-authorization: {self._proxy.authorization}\r\n"
        self._head = head
        self._timeout = timeout
        self._ssl = (ssl_context or ssl.create_default_context()) if self._tls else None
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def post(self, body: bytes, headers: dict[str, str]) -> HttpResponse:
        """The answer's status and headers, else `HttpClientError` (`HttpTimeout`)."""
        head = self._head + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = f"{head}content-length: {len(body)}\r\n\r\n".encode("latin-1") + body
        try:
            async with self._slots, asyncio.timeout(self._timeout):
                return await self._post(request)
        except TimeoutError as exc:
            raise HttpTimeout(f"no answer within {self._timeout:g} s") from exc

    async def _post(self, request: bytes) -> HttpResponse:
        while self._idle:
            connection = self._idle.pop()
            try:
                return await self._exchange(connection, request)
            except _NothingReceived:
                # A kept-alive connection the server closed meanwhile: the request was not
                # read, so sending it again cannot deliver it twice. Never once a byte came.
                continue
        connection = await self._connect()
        try:
            return await self._exchange(connection, request)
        except _NothingReceived as exc:
            raise HttpClientError(str(exc)) from exc.__cause__

    async def _connect(self) -> _Connection:
        try:
            if self._proxy is None:
                reader, writer = await asyncio.open_connection(
                    self._host, self._port, ssl=self._ssl, server_hostname=self._tls_name
                )
                return _Connection(reader, writer)
            reader, writer = await asyncio.open_connection(self._proxy.host, self._proxy.port)
            connection = _Connection(reader, writer)
            if self._ssl is not None:
                await self._tunnel(connection)
            return connection
        except (OSError, EOFError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise HttpClientError(f"cannot connect: {exc or type(exc).__name__}") from exc

    @property
    def _tls_name(self) -> str | None:
        return self._host if self._tls else None

    async def _tunnel(self, connection: _Connection) -> None:
        """CONNECT through the proxy, then TLS with the origin inside the tunnel."""
        assert self._proxy is not None and self._ssl is not None
        head = f"CONNECT {self._authority} HTTP/1.1\r\nhost: {self._authority}\r\n"
        if self._proxy.authorization is not None:
            head += f"proxy-authorization: {self._proxy.authorization}\r\n"
        connection.writer.write(f"{head}\r\n".encode("latin-1"))
        answer = await self._read_head(connection)
        if not 200 <= answer.status < 300:
            connection.close()
            raise HttpClientError(f"proxy refused the tunnel: HTTP {answer.status}")
        await connection.writer.start_tls(self._ssl, server_hostname=self._host)
        connection.answer = _Answer()  # the origin's answers are parsed afresh

    async def _read_head(self, connection: _Connection) -> _Answer:
        answer = connection.answer
        received = 0
        while not answer.head_done:
            data = await connection.reader.read(_READ_SIZE)
            if not data:
                raise HttpClientError("the proxy closed the connection before answering")
            received += len(data)
            if received > MAX_HEAD_BYTES:
                raise HttpClientError("the proxy's answer head is too large")
            try:
                answer.parser.feed_data(data)
            except httptools.HttpParserError as exc:
                raise HttpClientError(f"the proxy's answer is not HTTP/1.1: {exc}") from exc
        return answer

    async def _exchange(self, connection: _Connection, request: bytes) -> HttpResponse:
        answer = connection.answer
        answer.reset()
        received = 0
        try:
            connection.writer.write(request)
            await connection.writer.drain()
            while not answer.complete or answer.status < 200:
                data = await connection.reader.read(_READ_SIZE)
                if not data:
                    if received == 0:
                        raise _NothingReceived("the server closed the connection unanswered")
                    if answer.head_done and answer.status >= 200:
                        break  # a body that runs to the end of the connection
                    raise HttpClientError("the server closed the connection mid-answer")
                received += len(data)
                # Checked before parsing: with reads of at most MAX_HEAD_BYTES, a head not
                # done by then is larger than that, however the bytes were split.
                if not answer.head_done and received > MAX_HEAD_BYTES:
                    raise HttpClientError(f"the answer's head is over {MAX_HEAD_BYTES} bytes")
                try:
                    answer.parser.feed_data(data)
                except httptools.HttpParserError as exc:
                    if answer.complete and answer.status >= 200:
                        answer.keep_alive = False  # bytes after our answer: it stands, the
                        break  # connection does not
                    raise HttpClientError(f"the answer is not HTTP/1.1: {exc}") from exc
                head_only = answer.head_done and answer.status >= 200 and not answer.complete
                if head_only and _not_worth_reading(answer):
                    break  # the status is all we need; this connection is not reused
        except HttpClientError:
            connection.close()
            raise
        except (OSError, EOFError) as exc:
            connection.close()
            if received == 0:
                raise _NothingReceived(f"connection lost: {exc or type(exc).__name__}") from exc
            raise HttpClientError(f"connection lost mid-answer: {exc}") from exc
        except BaseException:
            connection.close()  # cancelled or timed out: the answer may still be coming
            raise
        if answer.complete and answer.keep_alive:
            self._idle.append(connection)
        else:
            connection.close()
        return HttpResponse(answer.status, answer.headers)

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()


def _not_worth_reading(answer: _Answer) -> bool:
    """A body that runs to the end of the connection, or one too large to read just to keep
    the connection: the answer is taken as it is, and the connection closed."""
    headers = answer.headers
    if "content-length" not in headers and "transfer-encoding" not in headers:
        return True
    length = headers.get("content-length", "")
    return answer.body_bytes > MAX_BODY_BYTES or (length.isdigit() and int(length) > MAX_BODY_BYTES)

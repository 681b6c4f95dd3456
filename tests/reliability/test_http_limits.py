"""Hostile clients over real sockets: oversized heads, dribbled heads and bodies, idle peers.

Each limit is configured small (VLMHOOKS_* settings) so the tests wait fractions of a
second; each would hold the connection forever, or buffer without bound, under uvicorn's
plain httptools protocol.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from receiver.ingest import slots as callback_slots
from tests.reliability.rawsocket import (
    connect,
    hardened_receiver,
    read_until_closed,
    send_until_refused,
    status_of,
)
from vlmhooks.settings import Settings
from vlmhooks.trust.tokens import CallbackTokens

HEADER_CAP = 16 * 1024
SHORT = 0.5
CALLBACK_HEAD = b"POST /v1/callbacks/not-a-token HTTP/1.1\r\nhost: x\r\n"


def limited_settings(sqlite_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": sqlite_url,
        "secret_keys": ("limits-key",),
        "allow_anonymous_reads": True,
        "max_header_bytes": HEADER_CAP,
        "header_timeout": SHORT,
        "body_timeout": SHORT,
        "keepalive_timeout": 1,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return limited_settings(sqlite_url)


def test_an_unfinished_oversized_header_gets_431_and_is_not_read(settings: Settings) -> None:
    with hardened_receiver(settings) as server, connect(server) as sock:
        # 32 MiB of one header value, never finished: refused after the cap, not buffered.
        sent = send_until_refused(sock, CALLBACK_HEAD + b"x-filler: ", 32 * 1024 * 1024)
        response = read_until_closed(sock)
    assert sent < 32 * 1024 * 1024
    assert status_of(response) == 431
    assert b"application/problem+json" in response


def test_an_oversized_request_line_gets_431(settings: Settings) -> None:
    with hardened_receiver(settings) as server, connect(server) as sock:
        sock.sendall(b"GET /healthz?" + b"q" * (HEADER_CAP + 10))
        assert status_of(read_until_closed(sock)) == 431


def test_a_head_just_under_the_cap_with_its_body_is_served(settings: Settings) -> None:
    filler = "f" * (HEADER_CAP - 200)
    with hardened_receiver(settings) as server:
        response = httpx.get(f"{server.url}/healthz", headers={"x-filler": filler})
    assert response.status_code == 200


def test_a_dribbled_head_is_answered_408_and_closed(settings: Settings) -> None:
    with hardened_receiver(settings) as server, connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ")
        response = read_until_closed(sock)
    assert status_of(response) == 408
    assert time.monotonic() - started < SHORT + 5


def test_a_silent_connection_is_closed(settings: Settings) -> None:
    with hardened_receiver(settings) as server, connect(server) as sock:
        assert status_of(read_until_closed(sock)) == 408


def test_a_dribbled_callback_body_is_answered_408_and_closed(settings: Settings) -> None:
    token = CallbackTokens(settings.require_secret_keys()).mint("sub_slow_body")
    head = f"POST /v1/callbacks/{token} HTTP/1.1\r\nhost: x\r\n".encode()
    with hardened_receiver(settings) as server, connect(server) as sock:
        sock.sendall(head + b"content-type: application/json\r\ncontent-length: 100\r\n\r\n")
        sock.sendall(b'{"id": ')
        response = read_until_closed(sock)
    assert status_of(response) == 408


@pytest.mark.parametrize(("head_timeout", "body_timeout"), [(0.6, 2.0), (2.0, 0.6)])
def test_each_request_on_a_kept_alive_connection_gets_its_own_full_timeouts(
    sqlite_url: str, head_timeout: float, body_timeout: float
) -> None:
    """One lazy timer serves a connection (receiver/server/protocol.py): the second request's
    deadlines count from that request, neither from the first nor from the other part's."""
    settings = limited_settings(
        sqlite_url, header_timeout=head_timeout, body_timeout=body_timeout, keepalive_timeout=5
    )
    token = CallbackTokens(settings.require_secret_keys()).mint("sub_kept_alive")
    head = f"POST /v1/callbacks/{token} HTTP/1.1\r\nhost: x\r\n".encode()
    with hardened_receiver(settings) as server:
        for dribble_body in (False, True):
            with connect(server) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
                first = b""
                while not first.endswith(b'{"status":"ok"}'):
                    first += sock.recv(65536)
                assert first.startswith(b"HTTP/1.1 200")
                time.sleep(0.3)
                started = time.monotonic()
                if dribble_body:
                    sock.sendall(head + b"content-type: application/json\r\n")
                    sock.sendall(b"content-length: 100\r\n\r\n{")
                    expected = body_timeout
                else:
                    sock.sendall(head + b"x-slow: ")
                    expected = head_timeout
                response = read_until_closed(sock)
                elapsed = time.monotonic() - started
            assert status_of(response) == 408
            # Never before its own deadline; the upper bound only guards against a hang.
            assert expected - 0.05 <= elapsed < expected + 3, (dribble_body, elapsed)


def test_an_unread_body_after_an_answer_is_not_waited_for(settings: Settings) -> None:
    with hardened_receiver(settings) as server, connect(server) as sock:
        # Answered (405) without reading the body; the dribbling rest ends the connection
        # at the body timeout, with nothing more written after the answer.
        sock.sendall(b"POST /healthz HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n")
        sock.sendall(b"x" * 10)
        response = read_until_closed(sock)
    assert status_of(response) == 405
    assert response.count(b"HTTP/1.1 ") == 1


def test_an_idle_keep_alive_connection_is_closed(settings: Settings) -> None:
    with hardened_receiver(settings) as server, connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        # Closed after VLMHOOKS_KEEPALIVE_TIMEOUT (1 s here), not uvicorn's default 5 s.
        response = read_until_closed(sock, deadline=4.0)
    assert status_of(response) == 200


def test_connections_over_the_limit_get_503(sqlite_url: str) -> None:
    settings = limited_settings(sqlite_url, max_connections=2, header_timeout=10.0)
    with hardened_receiver(settings) as server, connect(server), connect(server):
        deadline = time.monotonic() + 10
        while len(server.server.server_state.connections) < 2:
            assert time.monotonic() < deadline, "the idle connections never registered"
            time.sleep(0.01)
        response = httpx.get(f"{server.url}/healthz")
    assert response.status_code == 503


def test_callbacks_over_the_byte_budget_wait_then_get_503(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(callback_slots, "SLOT_WAIT_SECONDS", SHORT)
    settings = limited_settings(
        sqlite_url, callback_bytes_in_flight=4096, max_body_bytes=8192, body_timeout=30.0
    )
    token = CallbackTokens(settings.require_secret_keys()).mint("sub_slots")
    head = f"POST /v1/callbacks/{token} HTTP/1.1\r\nhost: x\r\n".encode()
    with hardened_receiver(settings) as server, connect(server) as holder:
        # The budget is held by a callback whose 4000-byte body is still arriving.
        holder.sendall(head + b"content-type: application/json\r\ncontent-length: 4000\r\n\r\n{")
        deadline = time.monotonic() + 10
        while True:
            # 200 bytes more than the budget has left.
            second = httpx.post(f"{server.url}/v1/callbacks/{token}", content=b" " * 300)
            if second.status_code == 503 or time.monotonic() > deadline:
                break
        assert second.status_code == 503
        assert second.headers["retry-after"] == "5"
        assert second.headers["content-type"] == "application/problem+json"
        metrics = httpx.get(f"{server.url}/metrics").text
    assert 'vlmhooks_callback_refusals_total{reason="busy"}' in metrics

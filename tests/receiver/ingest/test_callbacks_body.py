"""The body cap over real HTTP: 413 from Content-Length without reading, 413 while streaming
with an absent or lying Content-Length, and never more than the cap held by the app."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

from tests.receiver.callback_harness import (
    Receiver,
    assert_ack,
    assert_problem,
    encode,
    prediction_body,
    receiver_settings,
    running_receiver,
)

CAP = 64 * 1024
CHUNK = 16 * 1024
# Far more than the loopback socket buffers can absorb, so a sender that is not stopped
# would have to push all of it through the server.
STREAM_TOTAL = 32 * 1024 * 1024
# uvicorn hands the app at most its 64 KiB high-water mark plus one 256 KiB socket read.
TRANSPORT_SLACK = 320 * 1024


class BodyCounter:
    """ASGI wrapper counting the body bytes the app pulls; optionally lies about the length."""

    def __init__(self, app: Any, *, claimed_length: str | None = None) -> None:
        self.app = app
        self.claimed_length = claimed_length
        self.seen = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.claimed_length is not None:
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
            scope = dict(
                scope, headers=[*headers, (b"content-length", self.claimed_length.encode())]
            )

        async def counting_receive() -> Any:
            message = await receive()
            self.seen += len(message.get("body", b""))
            return message

        await self.app(scope, counting_receive, send)


def _settings(database_url: str, **overrides: Any) -> Any:
    values: dict[str, Any] = {"max_body_bytes": CAP, "delivery_body_cap": 4 * CAP}
    values.update(overrides)
    return receiver_settings(database_url, **values)


def _stream(sent: list[int]) -> Iterator[bytes]:
    for _ in range(STREAM_TOTAL // CHUNK):
        sent[0] += CHUNK
        yield b" " * CHUNK


def test_body_at_the_cap_is_accepted_and_one_byte_more_is_413(database_url: str) -> None:
    body = encode(prediction_body())
    with running_receiver(_settings(database_url, max_body_bytes=len(body))) as receiver:
        assert_ack(receiver.post(receiver.token(), body), verdict="stored", status="completed")
        assert_problem(receiver.post(receiver.token(), body + b" "), 413)


def test_declared_oversize_is_413_without_reading_a_byte(database_url: str) -> None:
    counters: list[BodyCounter] = []

    def wrap(app: Any) -> BodyCounter:
        counters.append(BodyCounter(app))
        return counters[0]

    with running_receiver(_settings(database_url), wrap=wrap) as receiver:
        response = receiver.post(receiver.token(), b"x" * (CAP + 1))
        problem = assert_problem(response, 413, detail_contains="Content-Length")
        assert problem["limit"] == CAP
        assert response.headers["connection"] == "close"
        assert counters[0].seen == 0
        (delivery,) = receiver.deliveries()
        assert (delivery["verdict"], delivery["http_status"]) == ("rejected", 413)
        assert delivery["body"] == b"" and delivery["headers"]["content-length"] == str(CAP + 1)


def test_a_huge_declared_length_is_answered_at_once(database_url: str) -> None:
    with running_receiver(_settings(database_url)) as receiver:
        host, port = receiver.url.removeprefix("http://").split(":")
        request = (
            f"POST /v1/callbacks/{receiver.token()} HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n"
        ).encode()
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request)  # and not one byte of the announced terabyte
            status_line = sock.recv(4096).split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1.1 413 ")


def _assert_stopped_early(receiver: Receiver, counter: BodyCounter, sent: list[int]) -> None:
    (delivery,) = receiver.deliveries()
    assert (delivery["verdict"], delivery["http_status"]) == ("rejected", 413)
    # The app held the cap and stopped; the sender could not push the whole stream.
    assert len(delivery["body"]) == CAP
    assert counter.seen <= CAP + TRANSPORT_SLACK
    assert sent[0] < STREAM_TOTAL


def test_streamed_body_without_length_stops_at_the_cap(database_url: str) -> None:
    counters: list[BodyCounter] = []

    def wrap(app: Any) -> BodyCounter:
        counters.append(BodyCounter(app))
        return counters[0]

    with running_receiver(_settings(database_url), wrap=wrap) as receiver:
        sent = [0]
        started = time.monotonic()
        response = receiver.post(receiver.token(), _stream(sent))
        assert response.request.headers["transfer-encoding"] == "chunked"
        assert_problem(response, 413, detail_contains="exceeds")
        assert response.headers["connection"] == "close"
        assert time.monotonic() - started < 10
        _assert_stopped_early(receiver, counters[0], sent)


def test_lying_content_length_does_not_lift_the_cap(database_url: str) -> None:
    counters: list[BodyCounter] = []

    def wrap(app: Any) -> BodyCounter:
        # The app is told the body is 10 bytes while the stream goes on and on.
        counters.append(BodyCounter(app, claimed_length="10"))
        return counters[0]

    with running_receiver(_settings(database_url), wrap=wrap) as receiver:
        sent = [0]
        response = receiver.post(receiver.token(), _stream(sent))
        assert_problem(response, 413, detail_contains="exceeds")
        _assert_stopped_early(receiver, counters[0], sent)

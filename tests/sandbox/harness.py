"""Sandbox test harness: a capturing callback receiver, tiny PNGs and polling helpers."""

from __future__ import annotations

import base64
import io
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# Fast retries everywhere: tests exercise the schedule, not the real service's pace.
FAST = {"backoff_base": 0.02, "delivery_timeout": 5.0}


def png_bytes(
    color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (24, 16)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def png_b64(color: tuple[int, int, int] = (200, 30, 30)) -> str:
    return base64.b64encode(png_bytes(color)).decode("ascii")


@dataclass
class Captured:
    body: bytes
    headers: dict[str, str]
    received_at: float

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class CaptureReceiver:
    """Records every callback; answers 500 to the first `fail_first` and sleeps `slow_first`
    seconds on the first `slow_count` calls (to trip the sandbox's timeout).
    """

    fail_first: int = 0
    slow_first: float = 0.0
    slow_count: int = 0
    image: bytes = field(default_factory=png_bytes)
    calls: list[Captured] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, drain_timeout: float = 5.0) -> None:
        # A slow call from an earlier test may still be sleeping here after its sender gave
        # up: wait for it, or it would count as in flight beside this test's first call.
        deadline = time.monotonic() + drain_timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            self.fail_first, self.slow_first, self.slow_count = 0, 0.0, 0
            self.calls.clear()
            self.max_in_flight = 0

    @property
    def callback_url(self) -> str:
        return f"{self.url}/callback"

    def app(self) -> Starlette:
        async def callback(request: Request) -> Response:
            body = await request.body()
            with self._lock:
                number = len(self.calls) + 1
                self.calls.append(Captured(body, dict(request.headers), time.monotonic()))
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                if number <= self.slow_count:
                    await anyio.sleep(self.slow_first)
            finally:
                with self._lock:
                    self.in_flight -= 1
            if number <= self.fail_first:
                return JSONResponse({"error": "told to fail"}, status_code=500)
            return JSONResponse({"ok": True})

        async def image(_request: Request) -> Response:
            return Response(self.image, media_type="image/png")

        async def missing(_request: Request) -> Response:
            return Response(b"gone", status_code=404)

        return Starlette(
            routes=[
                Route("/callback", callback, methods=["POST"]),
                Route("/image.png", image),
                Route("/missing.png", missing),
            ]
        )

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Captured]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.calls) >= count:
                    return list(self.calls)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} callbacks, got {len(self.calls)}")

    def statuses(self) -> list[str]:
        with self._lock:
            return [call.json()["status"] for call in self.calls]


def wait_terminal(client: httpx.Client, prediction_id: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        prediction: dict[str, Any] = client.get(f"/predictions/{prediction_id}").json()
        if prediction["status"] in ("completed", "failed"):
            return prediction
        time.sleep(0.01)
    raise AssertionError(f"prediction {prediction_id} did not finish")


def wait_attempts(
    client: httpx.Client, prediction_id: str, count: int, timeout: float = 5.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attempts: list[dict[str, Any]] = client.get(
            "/sandbox/deliveries", params={"prediction_id": prediction_id}
        ).json()
        if len(attempts) >= count:
            return attempts
        time.sleep(0.01)
    raise AssertionError(f"expected {count} delivery attempts for {prediction_id}")

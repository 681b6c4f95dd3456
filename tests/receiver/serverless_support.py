"""A Lambda instance in-process: the real handler, invoked with realistic events."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from receiver.server.serverless import ServerlessHandler
from tests.receiver.callback_harness import LOOKUP_KEY, mint, receiver_settings
from tests.receiver.lambda_events import EVENT_KINDS, Headers, LambdaAnswer, LambdaContext
from vlmhooks.settings import Settings
from vlmhooks.trust.signatures import sign_vlmrun

WEBHOOK_SECRET = "vlmrun-webhook-secret"


def serverless_settings(database_url: str, **overrides: Any) -> Settings:
    """Serverless mode, signed callbacks required; SQLite allowed as for a mounted volume."""
    values: dict[str, Any] = {
        "serverless": True,
        "serverless_allow_sqlite": database_url.startswith("sqlite"),
        "vlmrun_webhook_secrets": (WEBHOOK_SECRET,),
    }
    values.update(overrides)
    return receiver_settings(database_url, **values)


@dataclass
class LambdaInstance:
    """One function instance: every call goes through `handler(event, context)`."""

    handler: ServerlessHandler
    kind: str
    clock: Callable[[], float]
    base64_body: bool = False

    def invoke(
        self,
        method: str,
        path: str,
        *,
        headers: Headers | None = None,
        query: str = "",
        body: bytes | None = None,
        kind: str | None = None,
    ) -> LambdaAnswer:
        build = EVENT_KINDS[kind or self.kind]
        event = build(
            method,
            path,
            headers=dict(headers or {}),
            query=query,
            body=body,
            base64_body=self.base64_body and body is not None,
        )
        return LambdaAnswer.read(self.handler(event, LambdaContext()))

    def post_callback(
        self,
        body: bytes,
        *,
        submission_id: str = "sub_1",
        signed: bool = True,
        extra_headers: Headers | None = None,
    ) -> LambdaAnswer:
        headers: dict[str, str | list[str]] = {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "User-Agent": "VLMRun-Webhooks/1.0",
        }
        if signed:
            headers["X-VLMRun-Signature"] = sign_vlmrun(WEBHOOK_SECRET, body)
        headers.update(extra_headers or {})
        token = mint(submission_id, at=self.clock())
        return self.invoke("POST", f"/v1/callbacks/{token}", headers=headers, body=body)

    def get(self, path: str, query: str = "", *, auth: bool = True) -> LambdaAnswer:
        headers: dict[str, str | list[str]] = {
            # Repeated values, as clients and proxies send them.
            "Accept": ["application/json", "text/plain;q=0.5"],
        }
        if auth:
            headers["Authorization"] = f"Bearer {LOOKUP_KEY}"
        return self.invoke("GET", path, headers=headers, query=query)


@contextmanager
def lambda_instance(
    settings: Settings,
    kind: str = "http-api-v2",
    *,
    clock: Callable[[], float] | None = None,
    base64_body: bool = False,
) -> Iterator[LambdaInstance]:
    clock = clock or time.time
    handler = ServerlessHandler(settings, clock=clock)
    try:
        yield LambdaInstance(handler, kind, clock, base64_body)
    finally:
        handler.close()

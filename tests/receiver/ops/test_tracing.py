"""OpenTelemetry spans (vlmhooks/tracing.py): a submission's span stored on its row, the
callback's span linking back to it, the batch commit, a forwarding attempt and the API
request, into an in-memory exporter; and, with no OTEL_* set, nothing of OpenTelemetry loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from submit.client import VlmRunClient
from submit.images import UrlImage
from submit.retry import NO_RETRIES
from submit.submitter import SubmitItem, Submitter
from tests.forward import handlers
from tests.forward.sink import wait_until
from tests.forward.support import forward_settings, running_receiver
from tests.receiver.callback_harness import encode, prediction_body
from vlmhooks import tracing
from vlmhooks.store.db import make_engine
from vlmhooks.store.tables import SUBMISSION
from vlmhooks.trust.tokens import CallbackTokens

REPO = Path(__file__).resolve().parents[3]
CALLBACK_KEY = "forward-callback-key"  # the key forward_settings gives the receiver
CALLBACK_SPAN = "POST /v1/callbacks/{token}"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, as OTEL_TRACES_EXPORTER turns it on, into an in-memory exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert tracing.configure({"OTEL_TRACES_EXPORTER": "otlp"}, provider=provider)
    yield exporter
    tracing.configure({})
    provider.shutdown()


def _api(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=prediction_body("pending", "pred_traced"))

    return httpx.MockTransport(handle)


def _named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_the_callback_span_links_to_the_span_that_submitted_it_hours_later(
    spans: InMemorySpanExporter, sqlite_url: str
) -> None:
    handlers.reset()
    settings = forward_settings(sqlite_url, "python:tests.forward.handlers:record")
    engine = make_engine(sqlite_url)
    requests: list[httpx.Request] = []
    try:
        with running_receiver(settings) as receiver:
            client = VlmRunClient(
                "api-key", "https://api.test/v1", transport=_api(requests), retry=NO_RETRIES
            )
            submitter = Submitter(
                client,
                domain="document.invoice",
                engine=engine,
                tokens=CallbackTokens([CALLBACK_KEY]),
                public_url=str(receiver.client.base_url),
            )
            result = submitter.submit_one(
                SubmitItem([UrlImage("a.png", "https://images.test/a.png")])
            )
            assert result.ok and result.callback_url is not None, result
            callback = receiver.client.post(
                urlsplit(result.callback_url).path,
                content=encode(prediction_body("completed", "pred_traced")),
                headers={"content-type": "application/json"},
            )
            assert callback.status_code == 200, callback.text
            wait_until(lambda: _forwarded(spans))
        with engine.connect() as connection:
            stored = connection.execute(
                sa.select(SUBMISSION.c.trace_context).where(SUBMISSION.c.id == result.submission_id)
            ).scalar_one()
    finally:
        engine.dispose()

    (submitted,) = _named(spans, "vlmhooks.submit")
    assert submitted.context is not None
    assert _attributes(submitted)["submission.id"] == result.submission_id
    trace_id, span_id = f"{submitted.context.trace_id:032x}", f"{submitted.context.span_id:016x}"
    assert stored["traceparent"].split("-")[1:3] == [trace_id, span_id]

    (request,) = _named(spans, "POST")
    assert request.kind is SpanKind.CLIENT and request.parent is not None
    assert request.parent.span_id == submitted.context.span_id
    assert _attributes(request)["http.response.status_code"] == 201
    # The API may continue the trace: the request carried its context.
    assert requests[0].headers["traceparent"].split("-")[1] == trace_id

    (received,) = _named(spans, CALLBACK_SPAN)
    assert received.kind is SpanKind.SERVER
    assert _attributes(received) == {
        "http.request.method": "POST",
        "http.route": "/v1/callbacks/{token}",
        "http.response.status_code": 200,
        "vlmhooks.verdict": "stored",
        "prediction.id": "pred_traced",
        "submission.id": result.submission_id,
    }
    assert [link.context.span_id for link in received.links] == [submitted.context.span_id]
    assert received.links[0].context.trace_id == submitted.context.trace_id

    commits = _named(spans, "vlmhooks.commit")
    assert commits and all(commit.parent is None for commit in commits)
    assert sum(_attributes(c)["vlmhooks.batch.size"] for c in commits) >= 1
    assert {_attributes(c)["db.system.name"] for c in commits} == {"sqlite"}

    forwarded = [s for s in spans.get_finished_spans() if s.name.startswith("forward ")]
    assert forwarded and forwarded[0].kind is SpanKind.PRODUCER
    attributes = _attributes(forwarded[0])
    assert attributes["vlmhooks.forward.outcome"] == "delivered"
    assert attributes["prediction.id"] == "pred_traced"
    assert attributes["vlmhooks.forward.kind"] == "python"
    assert attributes["vlmhooks.forward.attempt"] == 1


def _forwarded(exporter: InMemorySpanExporter) -> bool:
    return any(span.name.startswith("forward ") for span in exporter.get_finished_spans())


def test_a_refused_callback_has_its_span_with_the_verdict_and_status(
    spans: InMemorySpanExporter, sqlite_url: str
) -> None:
    settings = forward_settings(sqlite_url, "python:tests.forward.handlers:record")
    with running_receiver(settings) as receiver:
        response = receiver.client.post(
            "/v1/callbacks/not-a-token", content=b"{}", headers={"content-type": "application/json"}
        )
    assert response.status_code == 401
    (received,) = _named(spans, CALLBACK_SPAN)
    attributes = _attributes(received)
    assert attributes["vlmhooks.verdict"] == "rejected"
    assert attributes["http.response.status_code"] == 401
    assert "submission.id" not in attributes and not received.links


CHILD = """
import json, sys
import receiver.app, receiver.ingest.callbacks, submit.client, submit.submitter
import vlmhooks.forward.relay
from vlmhooks import tracing
assert tracing.current_trace_context() is None
print(json.dumps({
    "enabled": tracing.enabled,
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"),
}))
if tracing.enabled:
    with tracing.start_span("probe"):
        pass
"""


def _run_child(env: dict[str, str]) -> tuple[dict[str, Any], str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update(env, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    first, _, rest = done.stdout.partition("\n")
    return json.loads(first), rest


def test_with_no_otel_variables_nothing_of_opentelemetry_is_imported() -> None:
    report, _ = _run_child({})
    assert report == {"enabled": False, "loaded": []}


def test_otel_sdk_disabled_keeps_tracing_off_whatever_else_is_set() -> None:
    try:
        assert not tracing.configure({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})
        assert not tracing.enabled
    finally:
        tracing.configure({})


def test_the_standard_variables_alone_turn_tracing_on_and_name_the_exporter() -> None:
    report, exported = _run_child(
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "hooks-under-test"}
    )
    assert report["enabled"] is True
    span = json.loads(exported)
    assert span["name"] == "probe"
    assert span["resource"]["attributes"]["service.name"] == "hooks-under-test"


@pytest.mark.parametrize(
    ("environ", "asked"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, False),
        ({"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, False),
    ],
)
def test_which_standard_variables_ask_for_traces(environ: dict[str, str], asked: bool) -> None:
    assert tracing.asked_for(environ) is asked

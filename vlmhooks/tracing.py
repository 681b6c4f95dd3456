"""OpenTelemetry spans, on when the standard `OTEL_*` variables ask for them and
`vlmhooks[otel]` is installed (README, "Inside your own app"); off, nothing of OpenTelemetry
is imported and each traced place costs one check of `enabled`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from opentelemetry.trace import Link, Span, Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

__all__ = [
    "TRACER_NAME",
    "asked_for",
    "configure",
    "current_trace_context",
    "enabled",
    "link_to",
    "start_span",
]

TRACER_NAME = "vlmhooks"
DEFAULT_SERVICE_NAME = "vlmhooks"
SpanKindName = Literal["internal", "server", "client", "producer", "consumer"]

log = logging.getLogger("vlmhooks.tracing")

# Read by every traced place before anything else: the whole cost of tracing when it is off.
enabled = False
_provider: TracerProvider | None = None
_tracer: Tracer | None = None
_lock = threading.Lock()


def asked_for(environ: Mapping[str, str]) -> bool:
    """Whether the standard variables ask for traces: an exporter named (not `none`) or an
    OTLP endpoint given, and the SDK not disabled."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure(
    environ: Mapping[str, str] | None = None, *, provider: TracerProvider | None = None
) -> bool:
    """Turn tracing on or off from `environ` (the process's environment by default); whether
    it is on. Run once at import; the tracer provider is built at the first span.

    `provider`: spans go to it instead of one built from the environment (a test's in-memory
    exporter); the environment still decides whether tracing is on.
    """
    global enabled, _provider, _tracer
    environ = os.environ if environ is None else environ
    wanted = asked_for(environ)
    with _lock:
        _provider, _tracer = provider, None
        enabled = wanted and (provider is not None or _installed())
    if wanted and not enabled:
        log.warning(
            "OTEL_* asks for traces, but OpenTelemetry is not installed: "
            "pip install 'vlmhooks[otel]'"
        )
    return enabled


def _installed() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry.sdk.trace") is not None
    except ImportError:
        return False


def tracer() -> Tracer:
    """The vlmhooks tracer; builds the provider from the environment on first use."""
    global _provider, _tracer
    if _tracer is not None:
        return _tracer
    with _lock:
        if _tracer is None:
            if _provider is None:
                _provider = _provider_from_environment()
            _tracer = _provider.get_tracer(TRACER_NAME)
        return _tracer


def _provider_from_environment() -> TracerProvider:
    """A host that set a global provider (`opentelemetry-instrument`, its own set-up) keeps
    it; otherwise an SDK provider with the exporters `OTEL_TRACES_EXPORTER` names, installed
    globally so the host's own instrumentation shares it."""
    from importlib.metadata import entry_points

    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):
        return current
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = SdkTracerProvider(resource=resource)  # the sampler: OTEL_TRACES_SAMPLER
    for name in _exporter_names(os.environ):
        found = entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            log.warning("OTEL_TRACES_EXPORTER: no exporter %r is installed", name)
            continue
        exporter_class = next(iter(found)).load()
        provider.add_span_processor(BatchSpanProcessor(exporter_class()))
    trace.set_tracer_provider(provider)
    return provider


def _exporter_names(environ: Mapping[str, str]) -> list[str]:
    names = [
        name.strip().lower()
        for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")
        if name.strip().lower() not in ("", "none")
    ]
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    # `otlp` is the protocol's exporter, as the SDK's own auto-configuration reads it.
    otlp = "otlp_proto_grpc" if protocol.strip().lower() == "grpc" else "otlp_proto_http"
    return [otlp if name == "otlp" else name for name in names]


@contextmanager
def start_span(
    name: str,
    *,
    kind: SpanKindName = "internal",
    attributes: Mapping[str, AttributeValue] | None = None,
    links: list[Link] | None = None,
    root: bool = False,
) -> Iterator[Span]:
    """A span, current inside the block; an escaping exception is recorded on it.

    `root`: no parent, whatever span is current (a batch commit serves many requests).
    """
    from opentelemetry import context, trace

    parent = context.Context() if root else None
    with tracer().start_as_current_span(
        name,
        context=parent,
        kind=trace.SpanKind[kind.upper()],
        attributes=attributes,
        links=links,
    ) as span:
        yield span


def current_trace_context() -> dict[str, str] | None:
    """The current span's W3C trace context (`traceparent`, and `tracestate` when there is
    one), to store; None when tracing is off or no span is recording."""
    if not enabled:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier if "traceparent" in carrier else None


def link_to(carrier: Mapping[str, str] | None) -> Link | None:
    """A link to the span whose stored trace context `carrier` is; None when it names none."""
    if not carrier:
        return None
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    extracted = TraceContextTextMapPropagator().extract(dict(carrier))
    span_context = trace.get_current_span(extracted).get_span_context()
    return trace.Link(span_context) if span_context.is_valid else None


configure()

"""`VLMHOOKS_FORWARD_TO` parsed once: each destination's kind, target, filters and a display
form with every credential masked, so no log line or API answer can leak one."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import (
    SplitResult,
    parse_qsl,
    quote,
    unquote,
    urlencode,
    urlsplit,
    urlunsplit,
)

from schemas.enums import Status
from vlmhooks.errors import ConfigError
from vlmhooks.store.outbox import Filters

__all__ = [
    "Destination",
    "Filters",
    "Kind",
    "parse_destinations",
    "require_client",
    "resolve_handler",
    "split_destination_list",
]

Kind = Literal["http", "redis", "nats", "amqp", "python"]
_SCHEMES: dict[str, Kind] = {
    "http": "http",
    "https": "http",
    "redis": "redis",
    "rediss": "redis",
    "nats": "nats",
    "tls": "nats",
    "amqp": "amqp",
    "amqps": "amqp",
}
# Query parameters that are ours: consumed here, never passed to the client library.
_FILTER_PARAMS = ("events", "domain")
_TARGET_PARAMS: dict[Kind, tuple[str, ...]] = {
    "http": (),
    "redis": ("stream",),
    "nats": ("subject",),
    "amqp": ("exchange", "routing_key"),
    "python": (),
}
# The module each kind needs, and the extra that installs it.
_CLIENTS: dict[Kind, tuple[str, str]] = {
    "redis": ("redis", "redis"),
    "nats": ("nats", "nats"),
    "amqp": ("aio_pika", "rabbitmq"),
}
# Not secrets: shown as given. Every other query value is masked in the display form.
_SHOWN_PARAMS = frozenset((*_FILTER_PARAMS, "stream", "subject", "exchange", "routing_key"))
Complaint = Callable[[str], ConfigError]
EVENT_TYPES = frozenset(f"prediction.{status.value}" for status in Status)
MASK = "***"
# A comma starts the next destination only when a URL scheme (or `python:`) follows it:
# `events=a,b` inside one destination's query string must stay whole.
_NEXT_DESTINATION = re.compile(r",\s*(?=[A-Za-z][A-Za-z0-9+.-]*://|python:)")
# `python:package.module:function`: the backend's own code, called in this process.
PYTHON_PREFIX = "python:"
_PYTHON_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


@dataclass(frozen=True)
class Destination:
    id: str
    kind: Kind
    target: str  # for logs and the API: every credential masked
    url: str = field(repr=False)  # for the client: credentials kept, our parameters removed
    params: Mapping[str, str] = field(default_factory=dict)  # stream, subject, exchange, ...
    filters: Filters = field(default_factory=Filters)
    credentials: tuple[str, ...] = field(default=(), repr=False)

    def scrub(self, text: str) -> str:
        """`text` (say, a client library's error) with this destination's credentials masked."""
        for secret in self.credentials:
            text = text.replace(secret, MASK)
        return text


def split_destination_list(text: str) -> list[str]:
    return [part.strip() for part in _NEXT_DESTINATION.split(text) if part.strip()]


def parse_destinations(text: str | Iterable[str]) -> tuple[Destination, ...]:
    """Every destination, or `ConfigError` naming the first unusable one (masked)."""
    items = split_destination_list(text) if isinstance(text, str) else list(text)
    destinations: dict[str, Destination] = {}
    for item in items:
        destination = _parse_one(item)
        if destination.id in destinations:
            raise ConfigError(f"VLMHOOKS_FORWARD_TO lists {destination.target} twice")
        destinations[destination.id] = destination
    return tuple(destinations.values())


def require_client(destination: Destination) -> None:
    """One clear line when the client library of a configured destination is missing, or
    the function a `python:` destination names cannot be found."""
    if destination.kind == "python":
        resolve_handler(destination.params["function"])
        return
    if destination.kind not in _CLIENTS:
        return
    module, extra = _CLIENTS[destination.kind]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"VLMHOOKS_FORWARD_TO: {destination.target} needs the {module} client, which is "
            f"not installed: pip install 'vlmhooks[{extra}]'"
        )


def resolve_handler(target: str) -> Callable[..., object]:
    """`package.module:function` imported, or `ConfigError` naming what is missing."""
    module_name, _, function_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"VLMHOOKS_FORWARD_TO: python:{target}: cannot import {module_name} ({exc})"
        ) from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(
            f"VLMHOOKS_FORWARD_TO: python:{target}: {module_name} has no function {function_name}"
        )
    return function  # type: ignore[no-any-return]


def _parse_python(text: str) -> Destination:
    target, _, query_text = text[len(PYTHON_PREFIX) :].partition("?")
    if not _PYTHON_TARGET.fullmatch(target):
        raise ConfigError(
            f"VLMHOOKS_FORWARD_TO: {text}: a python destination is python:package.module:function"
        )

    def bad(reason: str) -> ConfigError:
        return ConfigError(f"VLMHOOKS_FORWARD_TO: {text}: {reason}")

    params = dict(parse_qsl(query_text, keep_blank_values=True))
    unknown = sorted(set(params) - set(_FILTER_PARAMS))
    if unknown:
        raise bad(f"unknown parameter {unknown[0]}= (a python destination takes events=, domain=)")
    filters = Filters(
        events=_events(params.get("events"), bad), domain=params.get("domain") or None
    )
    identity = f"{PYTHON_PREFIX}{target}?{urlencode(sorted(params.items()))}"
    return Destination(
        id="python-" + hashlib.sha256(identity.encode()).hexdigest()[:12],
        kind="python",
        target=text,
        url=text,
        params={"function": target},
        filters=filters,
    )


def _parse_one(text: str) -> Destination:
    if text.startswith(PYTHON_PREFIX):
        return _parse_python(text)
    parts = urlsplit(text)
    credentials = _credentials(parts.username, parts.password)
    query = parse_qsl(parts.query, keep_blank_values=True)
    shown = _masked(parts, query)

    def bad(reason: str) -> ConfigError:
        return ConfigError(f"VLMHOOKS_FORWARD_TO: {shown}: {reason}")

    kind = _SCHEMES.get(parts.scheme.lower())
    if kind is None:
        known = ", ".join(f"{scheme}://" for scheme in _SCHEMES)
        raise bad(f"unsupported scheme (use one of {known}, or python:module:function)")
    try:
        port = parts.port
    except ValueError as exc:
        raise bad("the port is not a number") from exc
    if not parts.hostname:
        raise bad("no host")
    ours = _FILTER_PARAMS + _TARGET_PARAMS[kind]
    params: dict[str, str] = {}
    passed: list[tuple[str, str]] = []
    for key, value in query:
        if key in ours:
            if key in params:
                raise bad(f"{key}= given twice")
            params[key] = value
        else:
            passed.append((key, value))
            credentials += (value, quote(value, safe=""))
    filters = Filters(
        events=_events(params.pop("events", None), bad), domain=params.pop("domain", None)
    )
    if filters.domain == "":
        raise bad("domain= is empty")
    _check_target(kind, parts.path, params, bad)
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(passed), ""))
    identity = (
        urlunsplit((parts.scheme.lower(), f"{parts.hostname}:{port or ''}", parts.path, "", ""))
        + "?"
        + urlencode(sorted(params.items()))
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return Destination(
        id=f"{kind}-{digest}",
        kind=kind,
        target=shown,
        url=url,
        params=params,
        filters=filters,
        # Longest first, so a credential containing another is masked whole.
        credentials=tuple(sorted({c for c in credentials if c}, key=len, reverse=True)),
    )


def _credentials(username: str | None, password: str | None) -> tuple[str, ...]:
    found: list[str] = []
    for value in (password, username if password is None else None):
        if value:
            found += [value, unquote(value), quote(unquote(value), safe="")]
    return tuple(found)


def _masked(parts: SplitResult, query: list[tuple[str, str]]) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None else f"{host}:{port}"
    if parts.password is not None:
        netloc = f"{parts.username}:{MASK}@{netloc}"
    elif parts.username:
        netloc = f"{MASK}@{netloc}"  # a lone user part is often a token (nats://token@host)
    shown_query = "&".join(
        f"{key}={value if key in _SHOWN_PARAMS else MASK}" for key, value in query
    )
    return urlunsplit((parts.scheme, netloc, parts.path, shown_query, ""))


def _events(value: str | None, bad: Complaint) -> tuple[str, ...] | None:
    if value is None:
        return None
    events = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [event for event in events if event not in EVENT_TYPES]
    if not events or unknown:
        listed = ", ".join(sorted(EVENT_TYPES))
        raise bad(f"events= must list some of {listed}; got {value!r}")
    return events


def _check_target(kind: Kind, path: str, params: dict[str, str], bad: Complaint) -> None:
    if kind == "redis":
        if not params.get("stream"):
            raise bad("a redis destination needs ?stream=NAME")
        if path.strip("/") and not path.strip("/").isdigit():
            raise bad("the redis database (the path) must be a number")
    elif kind == "nats":
        if not params.get("subject"):
            raise bad("a nats destination needs ?subject=NAME")
        if path.strip("/"):
            raise bad("a nats URL has no path")
    elif kind == "amqp" and not (params.get("exchange") or params.get("routing_key")):
        raise bad("an amqp destination needs ?exchange=NAME and/or &routing_key=KEY")

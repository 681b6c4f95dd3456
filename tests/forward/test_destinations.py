"""Parsing `VLMHOOKS_FORWARD_TO`: kinds, filters, masking, and one clear line when wrong."""

from __future__ import annotations

import importlib.util

import pytest

from vlmhooks.errors import ConfigError
from vlmhooks.forward import destinations as destinations_module
from vlmhooks.forward.destinations import Filters, parse_destinations, require_client


def test_each_kind_with_its_target_and_filters() -> None:
    http, redis, nats, amqp = parse_destinations(
        "https://hooks.example.com/vlm?events=prediction.completed,prediction.failed"
        "&domain=document.*,"
        " redis://127.0.0.1:6379/2?stream=vlm,"
        "nats://127.0.0.1:4222?subject=vlm.changes,"
        "amqp://guest:guest@127.0.0.1:5672/%2F?exchange=vlm&routing_key=changes"
    )
    assert (http.kind, http.url) == ("http", "https://hooks.example.com/vlm")
    assert http.filters == Filters(("prediction.completed", "prediction.failed"), "document.*")
    assert (redis.kind, redis.params, redis.url) == (
        "redis",
        {"stream": "vlm"},
        "redis://127.0.0.1:6379/2",
    )
    assert (nats.kind, nats.params) == ("nats", {"subject": "vlm.changes"})
    assert amqp.params == {"exchange": "vlm", "routing_key": "changes"}
    assert len({d.id for d in (http, redis, nats, amqp)}) == 4


def test_filters_match_event_types_and_domain_patterns() -> None:
    filters = Filters(("prediction.completed",), "document.*")
    assert filters.matches("prediction.completed", "document.invoice")
    assert not filters.matches("prediction.running", "document.invoice")
    assert not filters.matches("prediction.completed", "image.caption")
    assert not filters.matches("prediction.completed", None)
    assert Filters().matches("prediction.running", None)


def test_credentials_are_masked_but_kept_for_the_client() -> None:
    (http,) = parse_destinations(
        "https://user:s3cret@h.example/x?token=abc&events=prediction.failed"
    )
    assert http.target == "https://user:***@h.example/x?token=***&events=prediction.failed"
    assert "s3cret" in http.url and "abc" in http.url and "events" not in http.url
    assert http.scrub("failed for https://user:s3cret@h.example/x?token=abc") == (
        "failed for https://user:***@h.example/x?token=***"
    )
    (nats,) = parse_destinations("nats://t0ken@127.0.0.1:4222?subject=s")
    assert nats.target == "nats://***@127.0.0.1:4222?subject=s"
    assert "t0ken" not in repr(nats)


def test_the_id_survives_credential_rotation_and_filter_changes() -> None:
    (old,) = parse_destinations("redis://:one@r:6379/0?stream=s")
    (new,) = parse_destinations("redis://:two@r:6379/0?stream=s&events=prediction.failed")
    assert old.id == new.id


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("ftp://user:pw@h/x", "unsupported scheme"),
        ("redis://127.0.0.1:6379/0", "needs ?stream="),
        ("redis://127.0.0.1:6379/x?stream=s", "must be a number"),
        ("nats://127.0.0.1:4222", "needs ?subject="),
        ("amqp://127.0.0.1/", "needs ?exchange="),
        ("http://h:port/x", "port is not a number"),
        ("http:///x", "no host"),
        ("http://h/x?events=prediction.done", "events= must list"),
        ("http://h/x?domain=", "domain= is empty"),
        ("http://h/x,http://h/x?events=prediction.failed", "twice"),
    ],
)
def test_a_malformed_destination_is_one_line_naming_it(value: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_destinations(value)
    line = caught.value.detail
    assert complaint in line and "\n" not in line
    assert line.startswith("VLMHOOKS_FORWARD_TO")
    assert "pw" not in line


def test_a_missing_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        destinations_module.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "aio_pika" else real(name, *args),
    )
    (amqp,) = parse_destinations("amqp://guest:guest@127.0.0.1/?exchange=x")
    with pytest.raises(ConfigError) as caught:
        require_client(amqp)
    assert "pip install 'vlmhooks[rabbitmq]'" in caught.value.detail
    assert "guest:guest" not in caught.value.detail
    (redis,) = parse_destinations("redis://127.0.0.1/0?stream=s")
    require_client(redis)  # installed: no complaint

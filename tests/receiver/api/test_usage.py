"""GET /v1/usage (the usage ledger) and the credits counter on /metrics, on SQLite and
PostgreSQL, with predictions stored through real signed callbacks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from prometheus_client.parser import text_string_to_metric_families

from tests.receiver.dashboard_support import (
    AUTH,
    NOW,
    Console,
    callback_body,
    running_console,
)


@pytest.fixture
def console(database_url: str) -> Iterator[Console]:
    with running_console(database_url) as running:
        yield running


def store_usage(console: Console) -> None:
    """Six predictions over three UTC days, three domains, four submissions."""
    day = timedelta(days=1)
    rows = [
        ("u-1", "sub-a", "document.invoice", 3, day * 2),
        ("u-2", "sub-a2", "document.invoice", 4, day),
        ("u-3", "sub-b", "document.ocr", 5, day),
        ("u-4", "sub-b2", "document.ocr", 2**40, timedelta(minutes=5)),
        ("u-5", "sub-c", None, 7, timedelta(minutes=1)),
    ]
    for prediction_id, submission_id, domain, credits, age in rows:
        console.deliver(
            submission_id, callback_body(prediction_id, domain=domain, credits=credits, age=age)
        )
    # Usage the API left out counts as nothing; a later delivery's usage replaces the first.
    no_usage = callback_body("u-6", "failed", domain="document.ocr", age=timedelta(minutes=2))
    no_usage["usage"] = None
    console.deliver("sub-d", no_usage)


def ledger(console: Console, **params: str) -> dict[str, Any]:
    response = console.http.get("/v1/usage", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def rows(body: dict[str, Any]) -> list[tuple[Any, int, int, int]]:
    return [
        (r["key"], r["predictions"], r["credits_used"], r["elements_processed"])
        for r in body["data"]
    ]


def test_usage_by_domain_day_and_submission(console: Console) -> None:
    store_usage(console)
    big = 2**40  # beyond 32-bit integers: summed as 64-bit
    by_domain = ledger(console)
    assert by_domain["group_by"] == "domain" and by_domain["truncated"] is False
    assert rows(by_domain) == [
        ("document.invoice", 2, 7, 2),
        ("document.ocr", 3, 5 + big, 2),
        (None, 1, 7, 1),
    ]
    assert by_domain["total"] == {
        "predictions": 6,
        "credits_used": 19 + big,
        "elements_processed": 5,
    }
    by_day = ledger(console, group_by="day")
    assert rows(by_day) == [
        ("2026-11-22", 1, 3, 1),
        ("2026-11-23", 2, 9, 2),
        ("2026-11-24", 3, 7 + big, 2),
    ]
    since = (NOW - timedelta(days=1, minutes=1)).isoformat()
    until = (NOW - timedelta(minutes=3)).isoformat()
    window = ledger(console, group_by="submission", since=since, until=until)
    assert window["since"] == "2026-11-23T11:59:30Z" and window["until"] == "2026-11-24T11:57:30Z"
    assert rows(window) == [("sub-a2", 1, 4, 1), ("sub-b", 1, 5, 1), ("sub-b2", 1, big, 1)]
    assert window["total"]["predictions"] == 3
    # `until` is exclusive, a naive time is UTC, and an empty window is zeros, not an error.
    naive = ledger(console, until=NOW.replace(tzinfo=None).isoformat(), since=since)
    assert naive["total"]["predictions"] == 5
    empty = ledger(console, since=until, until=since)
    assert empty["data"] == [] and empty["total"]["credits_used"] == 0
    first = ledger(console, group_by="submission", limit="2")
    assert [r["key"] for r in first["data"]] == ["sub-a", "sub-a2"] and first["truncated"]
    assert first["total"]["predictions"] == 6


def test_usage_refuses_bad_parameters_and_missing_keys(console: Console) -> None:
    for params, parameter in [
        ({"group_by": "week"}, "group_by"),
        ({"since": "yesterday"}, "since"),
        ({"until": ""}, "until"),
        ({"limit": "0"}, "limit"),
        ({"groupby": "day"}, "groupby"),  # misspelt: not silently the default grouping
    ]:
        answer = console.http.get("/v1/usage", params=params, headers=AUTH)
        assert answer.status_code == 400 and answer.json()["parameter"] == parameter
    assert console.http.get("/v1/usage").status_code == 401


def test_usage_matches_its_openapi_schema_and_metrics_count_credits(console: Console) -> None:
    store_usage(console)
    document = console.http.get("/openapi.json").json()
    root = {"components": document["components"], "$ref": "#/components/schemas/UsageLedger"}
    validator = Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for group_by in ("domain", "day", "submission"):
        assert list(validator.iter_errors(ledger(console, group_by=group_by))) == []
    assert "/v1/usage" in document["paths"]

    text = console.http.get("/metrics", headers=AUTH).text
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "vlmhooks_credits_used"
    ]
    assert family.type == "counter"
    credits = {sample.labels["domain"]: sample.value for sample in family.samples}
    assert credits == {
        "document.invoice": 7.0,
        "document.ocr": float(5 + 2**40),
        "unknown": 7.0,
    }

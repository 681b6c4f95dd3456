"""Forwarding to HTTP destinations end to end: a receiver on loopback, a sink on loopback,
real SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from tests.forward.sink import Sink, first_deliveries, running_sink, wait_until
from tests.forward.support import (
    AUTH,
    SECRET_NEW,
    SECRET_OLD,
    forward_settings,
    in_order,
    running_receiver,
)
from vlmhooks.trust.signatures import verify_standard_webhook

PREDICTIONS = 8
STATUSES = ("pending", "running", "completed")


def _statuses_by_prediction(sink: Sink, path: str | None = None) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for item in first_deliveries(sink.accepted(path)):
        document = item.document
        found[document["data"]["id"]].append(document["data"]["status"])
    return found


def test_every_change_arrives_signed_and_in_order(database_url: str) -> None:
    with running_sink() as sink:
        settings = forward_settings(database_url, f"{sink.url}/hook")
        with running_receiver(settings) as receiver:
            for status in STATUSES:
                for n in range(PREDICTIONS):
                    receiver.callback(f"pred_{n}", status)
            receiver.callback("pred_0", "completed")  # a duplicate: no change, no message
            sink.wait_for(lambda s: len(first_deliveries(s.accepted())) == PREDICTIONS * 3)
            wait_until(lambda: receiver.forwarding()[0]["backlog"] == 0)
            status = receiver.forwarding()[0]
            metrics = receiver.client.get("/metrics", headers=AUTH).text
            anonymous = receiver.client.get("/v1/forwarding")
    assert anonymous.status_code == 401
    total = PREDICTIONS * 3
    labels = f'destination="{status["id"]}"'
    assert f'vlmhooks_forward_attempts_total{{{labels},outcome="delivered"}} {total}.0' in metrics
    assert f"vlmhooks_forward_latency_seconds_count{{{labels}}} {total}.0" in metrics
    assert f"vlmhooks_forward_backlog{{{labels}}} 0.0" in metrics
    delivered = first_deliveries(sink.accepted())
    assert len(sink.accepted()) == len(delivered)  # nothing sent twice
    by_prediction = _statuses_by_prediction(sink)
    assert by_prediction == {f"pred_{n}": list(STATUSES) for n in range(PREDICTIONS)}
    for item in delivered:
        document = item.document
        assert set(document) == {"type", "timestamp", "data"}
        assert document["type"] == f"prediction.{document['data']['status']}"
        assert document["data"]["vlmhooks"]["submission_id"] == "sub_" + document["data"]["id"]
        # Two secrets configured: two signatures; a consumer holding either one verifies.
        assert len(item.headers["webhook-signature"].split(" ")) == 2
        for secret in (SECRET_OLD, SECRET_NEW):
            verdict = verify_standard_webhook(item.body, item.headers, [secret], now=time.time())
            assert verdict.msg_id == item.message_id
    assert status["enabled"] and status["dead_letters"] == 0
    assert status["last_delivered_at"] is not None


def test_a_destination_that_fails_then_recovers_gets_everything_in_order(
    database_url: str,
) -> None:
    with running_sink() as sink:
        sink.respond = lambda _request: (503, {"retry-after": "0"})
        settings = forward_settings(database_url, f"{sink.url}/hook")
        with running_receiver(settings) as receiver:
            for status in STATUSES:
                for n in range(PREDICTIONS):
                    receiver.callback(f"pred_{n}", status)
            sink.wait_for(lambda s: len(s.all()) >= 5)
            failing = receiver.forwarding()[0]
            sink.respond = lambda _request: (200, {})
            sink.wait_for(lambda s: len(first_deliveries(s.accepted())) == PREDICTIONS * 3)
    assert failing["backlog"] > 0 and failing["last_error"] == "HTTP 503"
    assert _statuses_by_prediction(sink) == {
        f"pred_{n}": list(STATUSES) for n in range(PREDICTIONS)
    }
    # Order holds per prediction in what the destination saw, retries included.
    seen: dict[str, list[str]] = defaultdict(list)
    for item in sink.accepted():
        seen[item.document["data"]["id"]].append(item.document["data"]["status"])
    assert all(in_order(statuses) for statuses in seen.values())


def test_filters_pick_events_and_domains(database_url: str) -> None:
    with running_sink() as sink:
        forward_to = (
            f"{sink.url}/terminal?events=prediction.completed,prediction.failed,"
            f"{sink.url}/documents?domain=document.*"
        )
        settings = forward_settings(database_url, forward_to)
        with running_receiver(settings) as receiver:
            receiver.callback("doc", "running", domain="document.invoice")
            receiver.callback("doc", "completed", domain="document.invoice")
            receiver.callback("img", "running", domain="image.caption")
            receiver.callback("img", "failed", domain="image.caption")
            sink.wait_for(lambda s: len(s.accepted()) == 4)
            wait_until(lambda: all(d["backlog"] == 0 for d in receiver.forwarding()))
    assert _statuses_by_prediction(sink, "/terminal") == {"doc": ["completed"], "img": ["failed"]}
    assert _statuses_by_prediction(sink, "/documents") == {"doc": ["running", "completed"]}


def test_dead_letters_are_listed_and_retried(database_url: str) -> None:
    with running_sink() as sink:
        sink.respond = lambda _request: (500, {})
        settings = forward_settings(database_url, f"{sink.url}/hook", forward_max_age=1)
        with running_receiver(settings) as receiver:
            receiver.callback("pred_dead", "completed")
            wait_until(lambda: receiver.forwarding()[0]["dead_letters"] == 1)
            destination = receiver.forwarding()[0]
            assert destination["backlog"] == 0
            listed = receiver.client.get(
                f"/v1/forwarding/{destination['id']}/dead-letters", headers=AUTH
            ).json()
            (letter,) = listed["data"]
            assert letter["prediction_id"] == "pred_dead"
            assert letter["type"] == "prediction.completed"
            assert letter["last_error"] == "HTTP 500" and letter["attempts"] >= 1
            sink.respond = lambda _request: (200, {})
            retried = receiver.client.post(
                f"/v1/forwarding/{destination['id']}/retry", headers=AUTH
            )
            assert retried.json() == {
                "destination": destination["id"],
                "retried": 1,
                "enabled": True,
            }
            sink.wait_for(lambda s: len(s.accepted()) == 1)
            wait_until(lambda: receiver.forwarding()[0]["dead_letters"] == 0)
            missing = receiver.client.post("/v1/forwarding/http-nope/retry", headers=AUTH)
            assert missing.status_code == 404
    # The retried message keeps its id: a consumer that saw it fail can de-duplicate.
    assert sink.accepted()[0].message_id == letter["message_id"]


def test_http_410_disables_the_destination_until_retried(database_url: str) -> None:
    with running_sink() as sink:
        sink.respond = lambda _request: (410, {})
        settings = forward_settings(database_url, f"{sink.url}/hook")
        with running_receiver(settings) as receiver:
            receiver.callback("pred_gone", "running")
            wait_until(lambda: not receiver.forwarding()[0]["enabled"])
            receiver.callback("pred_gone", "completed")
            destination = receiver.forwarding()[0]
            assert "410" in destination["disabled_reason"]
            attempts = len(sink.all())
            sink.respond = lambda _request: (200, {})
            wait_until(lambda: receiver.forwarding()[0]["backlog"] == 2)
            assert len(sink.all()) == attempts  # disabled: nobody calls it
            receiver.client.post(f"/v1/forwarding/{destination['id']}/retry", headers=AUTH)
            sink.wait_for(lambda s: len(s.accepted()) == 2)
    assert [r.document["data"]["status"] for r in sink.accepted()] == ["running", "completed"]


def test_credentials_never_reach_the_api_or_the_logs(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with running_sink() as sink:
        host = sink.url.removeprefix("http://")
        settings = forward_settings(
            database_url, f"http://hookuser:pa55word@{host}/hook?token=t0ken-value"
        )
        sink.respond = lambda _request: (503, {})
        with running_receiver(settings) as receiver:
            receiver.callback("pred_secret", "completed")
            sink.wait_for(lambda s: len(s.all()) >= 2)
            text = receiver.client.get("/v1/forwarding", headers=AUTH).text
            metrics = receiver.client.get("/metrics", headers=AUTH).text
    assert sink.all()[0].headers["authorization"].startswith("Basic ")  # still sent
    logged = caplog.text
    for secret in ("pa55word", "t0ken-value"):
        assert secret not in text and secret not in logged and secret not in metrics
    assert "hookuser:***@" in text and "token=***" in text
    assert "vlmhooks_forward_backlog" in metrics


@pytest.mark.postgres
def test_two_receivers_on_one_postgresql_deliver_each_change_once(postgres_url: str) -> None:
    with running_sink() as sink:
        settings = forward_settings(postgres_url, f"{sink.url}/hook")
        with running_receiver(settings) as first, running_receiver(settings) as second:
            for status in STATUSES:
                for n in range(PREDICTIONS * 2):
                    # Alternate receivers: each stores changes both relays can see.
                    (first if n % 2 else second).callback(f"pred_{n}", status)
            total = PREDICTIONS * 2 * len(STATUSES)
            sink.wait_for(lambda s: len(first_deliveries(s.accepted())) == total)
            wait_until(lambda: first.forwarding()[0]["backlog"] == 0)
    ids = [item.message_id for item in sink.accepted()]
    assert len(ids) == len(set(ids)) == total

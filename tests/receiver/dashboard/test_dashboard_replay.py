"""The detail page's replay endpoint over HTTP: the API's replay for one prediction, with the
session cookie, refused across sites, without a key, or when the body is not the page's.
The button itself, in a real browser: test_dashboard_browser.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from receiver.dashboard.headers import SECURITY_HEADERS
from receiver.dashboard.sessions import SESSION_COOKIE
from tests.receiver.dashboard_support import (
    API_KEY,
    AUTH,
    RELAXED_INVOICE_SCHEMA,
    Console,
    running_console,
    seed,
)

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}  # what Chromium sends from our own page


def session_cookie(console: Console) -> str:
    answer = console.http.post("/dashboard/sign-in", data={"key": API_KEY})
    cookie = answer.cookies.get(SESSION_COOKIE)
    assert answer.status_code == 303 and cookie, answer.text
    return cookie


def replay_path(prediction_id: str) -> str:
    return f"/dashboard/predictions/{quote(prediction_id, safe='')}/replay"


def replay(http: httpx.Client, prediction_id: str, *, dry_run: bool, **kwargs: Any) -> Any:
    kwargs.setdefault("headers", SAME_ORIGIN)
    answer = http.post(replay_path(prediction_id), json={"dry_run": dry_run}, **kwargs)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    return answer.json()


def outcomes(report: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(result["outcome"], result["status"]) for result in report["results"]]


def history(console: Console, prediction_id: str) -> Any:
    return console.http.get(f"/dashboard/data/predictions/{prediction_id}", headers=AUTH).json()


def test_the_session_cookie_replays_a_dry_run_then_for_real(any_console: Console) -> None:
    console = any_console
    s = seed(console)
    with httpx.Client(
        base_url=console.url, cookies={SESSION_COOKIE: session_cookie(console)}
    ) as browser:
        # Stored and unchanged since: the running call replays as stale, the final one as a
        # duplicate. The 401 named no prediction (never authenticated) and is not selected.
        before = history(console, s.completed)
        dry = replay(browser, s.completed, dry_run=True)
        assert dry["dry_run"] is True and dry["next_after_id"] is None
        assert outcomes(dry) == [("stale", "completed"), ("duplicate", "completed")]
        assert dry["counts"] == {"stale": 1, "duplicate": 1}
        assert [r["original_verdict"] for r in dry["results"]] == ["stored", "updated"]
        assert history(console, s.completed)["deliveries"] == before["deliveries"]

        # The operator corrects the submission's json_schema; the dry run says what would
        # change and changes nothing, the confirmed replay stores the new verdict.
        console.fix_json_schema(s.invalid_submission, RELAXED_INVOICE_SCHEMA)
        dry = replay(browser, s.invalid, dry_run=True)
        assert outcomes(dry) == [("updated", "completed")]
        assert "json_schema verdict re-checked" in dry["results"][0]["reason"]
        assert history(console, s.invalid)["prediction"]["vlmhooks"]["schema_valid"] is False
        done = replay(browser, s.invalid, dry_run=False)
        assert done["dry_run"] is False and outcomes(done) == [("updated", "completed")]
        fixed = history(console, s.invalid)
        assert fixed["prediction"]["vlmhooks"]["schema_valid"] is True
        assert not fixed["prediction"]["vlmhooks"]["schema_errors"]
        # The replay left its own delivery row; replaying again only finds a duplicate.
        assert len(fixed["deliveries"]) == 2
        again = replay(browser, s.invalid, dry_run=False)
        assert outcomes(again) == [("duplicate", "completed")]
    # The bearer header works as well (proxies, tests), and without Sec-Fetch-Site: a tool.
    by_key = replay(console.http, s.failed, dry_run=True, headers=AUTH)
    assert outcomes(by_key) == [("duplicate", "failed"), ("refused", None)]
    assert "422" in by_key["results"][1]["reason"]


def test_replay_refusals(console: Console) -> None:
    s = seed(console)
    path = replay_path(s.completed)
    deliveries = len(history(console, s.completed)["deliveries"])
    http = console.http
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = http.post(path, json={"dry_run": False}, headers={**SAME_ORIGIN, **headers})
        assert refused.status_code == 401, headers
        assert refused.headers["content-type"] == "application/problem+json"
        assert (
            refused.headers["content-security-policy"]
            == SECURITY_HEADERS["content-security-policy"]
        )
    cookie = session_cookie(console)
    with httpx.Client(base_url=console.url, cookies={SESSION_COOKIE: cookie}) as browser:
        # Another site's page: the browser says so, or its Origin does.
        for headers in (
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
        ):
            cross = browser.post(path, json={"dry_run": False}, headers=headers)
            assert cross.status_code == 403, headers
            assert cross.json()["type"].endswith("/cross-site-form"), cross.text
        assert replay(browser, s.completed, dry_run=True, headers={"Origin": console.url})
        bodies: list[tuple[dict[str, Any], int]] = [
            ({"content": b"{", "headers": {"content-type": "application/json"}}, 400),
            ({"data": {"dry_run": "false"}}, 415),
            ({"json": {}}, 422),
            ({"json": {"dry_run": "false"}}, 422),
            ({"json": {"dry_run": False, "limit": 5}}, 422),
            ({"json": {"dry_run": False, "pad": "x" * 2000}}, 413),
        ]
        for request, status in bodies:
            answer = browser.post(path, **request)
            assert answer.status_code == status, (request, answer.text)
        assert browser.post(replay_path("never-seen"), json={"dry_run": True}).status_code == 404
        assert browser.post(replay_path("p\x00"), json={"dry_run": True}).status_code == 404
        assert browser.get(path).status_code == 405
    # None of that wrote anything.
    assert len(history(console, s.completed)["deliveries"]) == deliveries


def test_an_anonymous_deployment_never_replays(sqlite_url: str) -> None:
    with running_console(sqlite_url, api_keys=(), allow_anonymous_reads=True) as console:
        s = seed(console)
        refused = console.http.post(replay_path(s.completed), json={"dry_run": True})
        assert refused.status_code == 403
        assert "VLMHOOKS_API_KEYS" in refused.json()["detail"]

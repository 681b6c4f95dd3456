"""The dashboard over HTTP: access (key, session cookie, sign-in/out), headers, assets and
the JSON the pages render. The same pages in a real browser: test_dashboard_browser.py."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson

from receiver.dashboard.headers import SECURITY_HEADERS
from receiver.dashboard.pages import ASSETS
from receiver.dashboard.sessions import SESSION_COOKIE, DashboardSessions
from tests.forward.sink import running_sink, wait_until
from tests.receiver.dashboard_support import (
    API_KEY,
    AUTH,
    FORWARD_CREDENTIALS,
    FROZEN_NOW,
    OLD_API_KEY,
    SECRET_KEY,
    Console,
    WallClock,
    callback_body,
    forwarding,
    forwarding_overrides,
    http_destination,
    running_console,
    seed,
    wait_registered,
)
from tests.receiver.lookup_support import EventReader

HTML = {"Accept": "text/html,application/xhtml+xml"}
GUARDED = [
    "/dashboard",
    "/dashboard/predictions/p",
    "/dashboard/data/overview",
    "/dashboard/data/predictions/p",
    "/dashboard/data/deliveries/1",
    "/dashboard/events",
]
PAGES = ["overview.html", "prediction.html", "signin.html"]


def sign_in(http: httpx.Client, key: str = API_KEY, **form: str) -> httpx.Response:
    return http.post("/dashboard/sign-in", data={"key": key, **form})


def sign_in_with(http: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    return http.post("/dashboard/sign-in", data={"key": API_KEY}, headers=headers)


def set_cookie(response: httpx.Response) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(response.headers["set-cookie"])
    return cookie


def test_nothing_is_served_without_a_key_or_session(console: Console) -> None:
    http = console.http
    for path in GUARDED:
        refused = http.get(path)
        assert refused.status_code == 401, path
        assert refused.headers["content-type"] == "application/problem+json"
        assert "sign in" in refused.json()["detail"]
        assert http.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    # A browser is sent to the form, which remembers where it was going.
    redirect = http.get("/dashboard/predictions/p?x=1", headers=HTML)
    assert redirect.status_code == 303
    location = urlsplit(redirect.headers["location"])
    assert location.path == "/dashboard/sign-in"
    assert parse_qs(location.query) == {"next": ["/dashboard/predictions/p?x=1"]}
    # The key is no longer accepted in the URL, and an old link's key does not travel on.
    assert http.get("/dashboard", params={"access_token": API_KEY}).status_code == 401
    old_link = http.get("/dashboard", params={"access_token": API_KEY}, headers=HTML)
    assert API_KEY not in old_link.headers["location"]
    # The bearer header is accepted (proxies, tests), for every rotated key.
    for key in (API_KEY, OLD_API_KEY):
        page = http.get("/dashboard", headers={"Authorization": f"Bearer {key}"})
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"


def test_sign_in_sets_a_strict_http_only_expiring_cookie(console: Console) -> None:
    http = console.http
    answer = sign_in(http, next="/dashboard/predictions/p")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/predictions/p"
    morsel = set_cookie(answer)[SESSION_COOKIE]
    assert morsel["httponly"] and morsel["samesite"].lower() == "strict"
    assert morsel["path"] == "/dashboard" and morsel["max-age"] == "28800"
    assert not morsel["secure"]  # plain http on loopback
    assert API_KEY not in morsel.value
    with httpx.Client(base_url=console.url) as browser:
        browser.cookies.set(SESSION_COOKIE, morsel.value)
        assert browser.get("/dashboard/data/overview").status_code == 200
        assert browser.get("/dashboard").status_code == 200
        # A wrong header is not rescued by a good cookie.
        wrong = browser.get("/dashboard/data/overview", headers={"Authorization": "Bearer no"})
        assert wrong.status_code == 401
        # The cookie is for the dashboard, not the API.
        assert browser.get("/v1/predictions").status_code == 401
    # Over https (X-Forwarded-Proto from the trusted loopback proxy) it is also Secure.
    secure = http.post(
        "/dashboard/sign-in", data={"key": API_KEY}, headers={"X-Forwarded-Proto": "https"}
    )
    assert set_cookie(secure)[SESSION_COOKIE]["secure"]


def test_sign_in_refusals(console: Console) -> None:
    http = console.http
    wrong = sign_in(http, key="not-a-key", next="/dashboard?status=failed")
    assert wrong.status_code == 303 and "set-cookie" not in wrong.headers
    query = parse_qs(urlsplit(wrong.headers["location"]).query)
    assert query == {"error": ["wrong-key"], "next": ["/dashboard?status=failed"]}
    # Only a dashboard path on this site is a place to go back to.
    for target in ("https://evil.example/dashboard", "//evil.example", "/v1/predictions"):
        assert sign_in(http, next=target).headers["location"] == "/dashboard"
    cross_site = http.post(
        "/dashboard/sign-in", data={"key": API_KEY}, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403
    assert cross_site.headers["content-type"] == "application/problem+json"
    for headers in (
        {"Origin": console.url},
        # Under Referrer-Policy: no-referrer a browser posts `Origin: null`; Sec-Fetch-Site
        # still says where the form was.
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    ):
        assert sign_in_with(http, headers).status_code == 303, headers
    for headers in ({"Origin": "null"}, {"Sec-Fetch-Site": "cross-site", "Origin": console.url}):
        assert sign_in_with(http, headers).status_code == 403, headers
    not_a_form = http.post("/dashboard/sign-in", json={"key": API_KEY})
    assert not_a_form.status_code == 415
    huge = http.post("/dashboard/sign-in", data={"key": "k" * 20_000})
    assert huge.status_code == 413


def test_sessions_expire_and_end_with_their_key(console: Console) -> None:
    cookie = set_cookie(sign_in(console.http))[SESSION_COOKIE].value
    with httpx.Client(base_url=console.url, cookies={SESSION_COOKIE: cookie}) as browser:
        assert browser.get("/dashboard/data/overview").status_code == 200
        console.clock.now = FROZEN_NOW + 8 * 3600 + 1
        expired = browser.get("/dashboard/data/overview")
        assert expired.status_code == 401 and "expired" in expired.json()["detail"]
        redirect = browser.get("/dashboard", headers=HTML)
        assert parse_qs(urlsplit(redirect.headers["location"]).query)["error"] == ["expired"]
        browser.cookies.set(SESSION_COOKIE, cookie[:-2] + "xx")
        assert "not valid" in browser.get("/dashboard/data/overview").json()["detail"]
    # Dropping a key from VLMHOOKS_API_KEYS ends the sessions opened with it.
    clock = lambda: FROZEN_NOW  # noqa: E731
    both = DashboardSessions([SECRET_KEY], [OLD_API_KEY, API_KEY], max_age_seconds=60, clock=clock)
    rotated = DashboardSessions([SECRET_KEY], [API_KEY], max_age_seconds=60, clock=clock)
    old_session = both.sign_in(OLD_API_KEY)
    assert old_session is not None and both.verify(old_session) == "valid"
    assert rotated.verify(old_session) == "invalid"
    assert both.sign_in("nope") is None and both.sign_in("") is None


def test_sign_out_clears_the_cookie(console: Console) -> None:
    answer = console.http.post("/dashboard/sign-out")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/sign-in?signed_out=1"
    morsel = set_cookie(answer)[SESSION_COOKIE]
    assert morsel.value == "" and morsel["max-age"] == "0" and morsel["path"] == "/dashboard"
    cross_site = console.http.post("/dashboard/sign-out", headers={"Origin": "http://evil"})
    assert cross_site.status_code == 403


def test_every_dashboard_response_carries_the_security_headers(console: Console) -> None:
    responses = [
        console.http.get("/dashboard", headers=AUTH),
        console.http.get("/dashboard", headers=HTML),
        console.http.get("/dashboard/data/overview"),
        console.http.get("/dashboard/data/predictions/missing", headers=AUTH),
        console.http.get("/dashboard/sign-in"),
        sign_in(console.http),
        console.http.get("/dashboard/static/overview.js"),
        console.http.get("/dashboard/static/nope.js"),
    ]
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, (response.url, name)
    csp = SECURITY_HEADERS["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp


def test_pages_hold_no_inline_script_or_style(console: Console) -> None:
    for name, path in [("overview.html", "/dashboard"), ("signin.html", "/dashboard/sign-in")]:
        html = console.http.get(path, headers=AUTH).text
        assert "<!doctype html>" in html, name
        scripts = re.findall(r"<script\b[^>]*>", html)
        assert scripts and all(' src="/dashboard/static/' in tag for tag in scripts)
        assert not re.search(r"<script\b[^>]*>[^<]+</script>", html)
        assert not re.search(r"\son[a-z]+=", html) and "style=" not in html and "<style" not in html
        assert "access_token" not in html


def test_static_assets_are_an_allow_list_revalidated_by_etag(console: Console) -> None:
    for name, media_type in ASSETS.items():
        asset = console.http.get(f"/dashboard/static/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"] == media_type
        assert asset.headers["cache-control"] == "no-cache"
        again = console.http.get(
            f"/dashboard/static/{name}", headers={"If-None-Match": asset.headers["etag"]}
        )
        assert again.status_code == 304
    for name in ("overview.html", "..%2Fapp.py", "dashboard.css.map"):
        assert console.http.get(f"/dashboard/static/{name}").status_code == 404, name
    for script in ("common.js", "overview.js", "prediction.js", "signin.js"):
        source = console.http.get(f"/dashboard/static/{script}").text
        # Data reaches the DOM as text only.
        assert "innerHTML" not in source and "insertAdjacentHTML" not in source, script
        assert "document.write" not in source and "eval(" not in source, script


def test_overview_data_counts_charts_credits_and_refusals(any_console: Console) -> None:
    console = any_console
    s = seed(console)
    overview = console.http.get("/dashboard/data/overview", headers=AUTH).json()
    counts = overview["counts"]
    assert counts["total"] == 4
    assert counts["by_status"] == {
        "enqueued": 0,
        "pending": 0,
        "running": 1,
        "paused": 0,
        "completed": 2,
        "failed": 1,
    }
    assert counts["by_domain"] == [
        {"domain": "document.invoice", "count": 2},
        {"domain": "document.ocr", "count": 1},
        {"domain": "image.caption", "count": 1},
    ]
    minutes = overview["callbacks_per_minute"]
    assert len(minutes) == 60 and minutes[-1]["minute"] == "2026-11-24T12:00Z"
    # Five accepted deliveries (one prediction called back twice) and three refusals.
    assert minutes[-1] == {"minute": "2026-11-24T12:00Z", "accepted": 5, "refused": 3}
    assert all(m["accepted"] == m["refused"] == 0 for m in minutes[:-1])
    assert overview["credits"] == [
        {"domain": "document.invoice", "today": 5, "last_7_days": 5},
        {"domain": "document.ocr", "today": 1, "last_7_days": 1},
        {"domain": "image.caption", "today": 0, "last_7_days": 0},
    ]
    assert [p["id"] for p in overview["predictions"]] == [
        s.running,
        s.failed,
        s.invalid,
        s.completed,
    ]
    reasons = [(d["http_status"], d["reason"]) for d in overview["refused"]]
    assert [status for status, _ in reasons] == [409, 422, 401]
    assert "bound to prediction" in reasons[0][1]
    assert "status" in reasons[1][1] and "signature" in reasons[2][1].lower()
    assert overview["positions"] == {"event_seq": 5, "delivery_id": 8}
    assert overview["forwarding"] == {"destinations": []}  # the panel's "none configured"

    def ids(**params: str) -> list[str]:
        page = console.http.get("/dashboard/data/overview", params=params, headers=AUTH).json()
        return [p["id"] for p in page["predictions"]]

    assert ids(status="failed") == [s.failed]
    assert sorted(ids(domain="document.invoice")) == sorted([s.completed, s.invalid])
    assert ids(q="sub-ocr") == [s.failed]  # a submission id prefix
    assert ids(q="pred-caption") == [s.running]
    assert ids(q="PRED-caption") == []  # ids are case-sensitive
    assert ids(q="%") == [] and ids(status="", domain="", q=" ") != []
    bad = console.http.get("/dashboard/data/overview?status=done", headers=AUTH)
    assert bad.status_code == 400 and bad.json()["parameter"] == "status"


def test_overview_data_lists_forwarding_destinations_as_the_api_does(database_url: str) -> None:
    with running_sink() as sink:
        sink.respond = lambda _request: (410, {})  # disables it: its backlog stays put
        overrides = forwarding_overrides(http_destination(sink.url))
        with running_console(database_url, clock=WallClock(), **overrides) as console:
            wait_registered(console, 1)
            seed(console)
            wait_until(lambda: forwarding(console)[0]["enabled"] is False)
            answer = console.http.get("/dashboard/data/overview", headers=AUTH)
            api = forwarding(console)
    assert answer.status_code == 200
    (shown,) = answer.json()["forwarding"]["destinations"]
    # One read behind both; only the age differs, "now" being read once per answer.
    age = "oldest_pending_age_seconds"
    assert {**shown, age: None} == {**api[0], age: None} and shown[age] >= 0
    assert shown["kind"] == "http" and shown["configured"] is True
    host = sink.url.removeprefix("http://")
    assert shown["target"] == f"http://hookuser:***@{host}/hook?token=***"
    assert shown["filters"] == {"events": None, "domain": None}
    assert shown["backlog"] == 5  # five accepted changes; refusals are not forwarded
    assert shown["dead_letters"] == 0 and shown["last_delivered_at"] is None
    assert "410" in (shown["disabled_reason"] or "")
    for secret in FORWARD_CREDENTIALS:
        assert secret not in answer.text


def test_prediction_history_and_raw_bodies(any_console: Console) -> None:
    console = any_console
    s = seed(console)
    history = console.http.get(f"/dashboard/data/predictions/{s.completed}", headers=AUTH).json()
    assert [step["status"] for step in history["timeline"]] == ["running", "completed"]
    assert history["failure"] is None
    assert history["prediction"]["vlmhooks"]["schema_valid"] is True
    submission = history["submission"]
    assert submission["id"] == s.ok_submission and submission["prompt"]
    assert submission["json_schema"]["required"] == ["total", "currency"]
    assert "prediction" not in submission and "deliveries" not in submission
    verdicts = [(d["verdict"], d["http_status"]) for d in history["deliveries"]]
    # The bad signature named no prediction (refused before the body was read): listed here
    # through the submission. The 409 impostor belongs to another id.
    assert verdicts == [("rejected", 401), ("updated", 200), ("stored", 200)]
    assert all("body" not in d for d in history["deliveries"])
    assert history["deliveries"][1]["headers"]["x-vlmrun-signature"].startswith("sha256=")

    failed = console.http.get(f"/dashboard/data/predictions/{s.failed}", headers=AUTH).json()
    assert failed["failure"] == s.failure
    assert [(d["verdict"], d["http_status"]) for d in failed["deliveries"]] == [
        ("rejected", 422),
        ("stored", 200),
    ]
    invalid = console.http.get(f"/dashboard/data/predictions/{s.invalid}", headers=AUTH).json()
    assert invalid["prediction"]["vlmhooks"]["schema_valid"] is False
    assert invalid["prediction"]["vlmhooks"]["schema_errors"]

    delivery_id = history["deliveries"][1]["id"]
    raw = console.http.get(f"/dashboard/data/deliveries/{delivery_id}", headers=AUTH).json()
    assert raw["body_encoding"] == "utf-8" and '"currency":"EUR"' in raw["body"]
    # Never stored, but named by a refused delivery: the history explains the refusal.
    impostor = console.http.get("/dashboard/data/predictions/pred-impostor", headers=AUTH).json()
    assert impostor["prediction"] is None and impostor["timeline"] == []
    assert [d["http_status"] for d in impostor["deliveries"]] == [409]
    assert impostor["submission"]["id"] == s.ok_submission
    missing = console.http.get("/dashboard/data/predictions/nope", headers=AUTH)
    assert missing.status_code == 404
    assert console.http.get("/dashboard/data/deliveries/999", headers=AUTH).status_code == 404
    assert console.http.get("/dashboard/data/deliveries/x", headers=AUTH).status_code == 400


def test_anonymous_deployment_serves_the_dashboard_without_sign_in(sqlite_url: str) -> None:
    with running_console(sqlite_url, api_keys=(), allow_anonymous_reads=True) as console:
        assert console.http.get("/dashboard", headers=HTML).status_code == 200
        assert console.http.get("/dashboard/data/overview").status_code == 200
        assert sign_in(console.http, key="anything").headers["location"] == "/dashboard"


def test_dashboard_stream_carries_changes_and_refusals_and_resumes(console: Console) -> None:
    s = seed(console)
    with httpx.Client(base_url=console.url, headers=AUTH, timeout=30) as http:
        # From the start: five prediction events, then the three refusals, ids "seq.delivery".
        params = {"after": "0", "after_delivery": "0"}
        with http.stream("GET", "/dashboard/events", params=params) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["x-content-type-options"] == "nosniff"
            events = EventReader(response).events(8)
        assert [(e.event, e.id) for e in events[:2]] == [
            ("prediction.running", "1.0"),
            ("prediction.completed", "2.0"),
        ]
        assert orjson.loads(events[1].data) == {"id": s.completed, "status": "completed"}
        refusals = [orjson.loads(e.data) for e in events[5:]]
        assert [e.event for e in events[5:]] == ["delivery.rejected"] * 3
        assert [e.id for e in events[5:]] == ["5.6", "5.7", "5.8"]
        assert [r["http_status"] for r in refusals] == [401, 422, 409]
        assert "body" not in refusals[0] and refusals[0]["submission_id"] == s.ok_submission
        # Resuming after the last id repeats nothing; new news arrives.
        with http.stream("GET", "/dashboard/events", headers={"Last-Event-ID": "5.8"}) as response:
            reader = EventReader(response)
            console.refuse("sub-x", {"id": "late"}, 401, signed=False)
            console.deliver("sub-x", callback_body("late"))
            late = reader.events(2)
        # Whether the stream woke between the two commits or after both, it ends at the
        # same position and carries each piece of news once.
        assert sorted(e.event for e in late) == ["delivery.rejected", "prediction.completed"]
        assert late[-1].id == "6.9"
        for bad in ({"after": "1"}, {"after": "x", "after_delivery": "1"}):
            assert http.get("/dashboard/events", params=bad).status_code == 400
        assert http.get("/dashboard/events", headers={"Last-Event-ID": "12"}).status_code == 400

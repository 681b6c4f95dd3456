"""The dashboard in a real browser (Chromium via Playwright) against a real receiver on
loopback, fed with real signed callbacks. Every wait is one of Playwright's auto-waiting
assertions; every page must finish without a console error (CSP violations included).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.forward.sink import running_sink, wait_until
from tests.receiver.dashboard_support import (
    AMQP_DESTINATION,
    API_KEY,
    FORWARD_CREDENTIALS,
    HOSTILE_TEXT,
    REDIS_DESTINATION,
    RELAXED_INVOICE_SCHEMA,
    Console,
    Seeded,
    WallClock,
    callback_body,
    forwarding,
    forwarding_overrides,
    http_destination,
    running_console,
    seed,
    wait_registered,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

from playwright.sync_api import expect


@pytest.fixture
def seeded(console: Console) -> Seeded:
    return seed(console)


@contextmanager
def checked_page(browser: Browser, url: str) -> Iterator[Page]:
    """A fresh browser context (no cookies) whose console must stay free of errors."""
    context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    opened.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    opened.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    yield opened
    context.close()
    assert errors == [], errors


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    with checked_page(browser, console.url) as opened:
        yield opened


def sign_in(page: Page, key: str = API_KEY) -> None:
    page.goto("/dashboard")
    expect(page).to_have_url(re.compile(r"/dashboard/sign-in\?next=%2Fdashboard$"))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def signed_in(page: Page, console: Console) -> None:
    sign_in(page)
    expect(page).to_have_url(f"{console.url}/dashboard")


def card(page: Page, status: str) -> object:
    return page.locator(f'#status-counts [data-status="{status}"] .count')


def test_overview_counts_credits_chart_and_refusals(
    page: Page, console: Console, seeded: Seeded, screenshot_dir: Path
) -> None:
    signed_in(page, console)
    expect(card(page, "total")).to_have_text("4")
    expect(card(page, "completed")).to_have_text("2")
    expect(card(page, "failed")).to_have_text("1")
    expect(card(page, "running")).to_have_text("1")
    expect(card(page, "pending")).to_have_text("0")
    expect(page.locator('#domain-counts tr[data-domain="document.invoice"] td')).to_have_text(
        ["document.invoice", "2"]
    )
    expect(page.locator('#credits tr[data-domain="document.invoice"] td')).to_have_text(
        ["document.invoice", "5", "5"]
    )
    expect(page.locator('#credits tr[data-domain="document.ocr"] td')).to_have_text(
        ["document.ocr", "1", "1"]
    )
    expect(page.locator("#minute-summary")).to_have_text("8 callbacks in the last hour, 3 refused")
    expect(page.locator("#per-minute rect.bar.refused")).to_have_count(60)
    expect(page.locator("#predictions tbody tr")).to_have_count(4)
    expect(page.locator("#predictions tbody tr").first).to_have_attribute("data-id", seeded.running)
    refused = page.locator("#refused tbody tr")
    expect(refused).to_have_count(3)
    expect(refused.locator("td.reason")).to_have_text(
        [
            re.compile("bound to prediction pred-invoice-ok"),
            re.compile(r"422 .*status"),
            re.compile("401 .*[Ss]ignature"),
        ]
    )
    expect(refused.nth(2).locator("td.num")).to_have_text("401")
    expect(page.locator("#forwarding tbody tr")).to_have_count(0)
    expect(page.locator("#forwarding-empty")).to_have_text("No destinations configured.")
    page.screenshot(path=screenshot_dir / "overview.png", full_page=True)
    # The 409's claimed id was never stored; its page still explains the refusal.
    refused.first.get_by_role("link", name="pred-impostor").click()
    expect(page.locator("#never-stored")).to_be_visible()
    expect(page.locator("#deliveries tbody tr .verdict")).to_have_text(["rejected"])
    expect(page.locator("#deliveries tbody tr td.reason")).to_contain_text("bound to prediction")


def test_overview_updates_live_without_a_reload(
    page: Page, console: Console, seeded: Seeded, screenshot_dir: Path
) -> None:
    signed_in(page, console)
    expect(card(page, "total")).to_have_text("4")
    expect(page.locator("#live")).to_have_text("live")
    page.evaluate("window.__sameDocument = true")

    console.deliver("sub-live", callback_body("pred-live", "running", domain="video.caption"))
    row = page.locator('#predictions tbody tr[data-id="pred-live"]')
    expect(row).to_have_attribute("data-status", "running")
    expect(card(page, "total")).to_have_text("5")
    expect(card(page, "running")).to_have_text("2")

    console.deliver("sub-live", callback_body("pred-live", credits=7, domain="video.caption"))
    expect(row).to_have_attribute("data-status", "completed")
    expect(card(page, "running")).to_have_text("1")
    expect(page.locator('#credits tr[data-domain="video.caption"] td')).to_have_text(
        ["video.caption", "7", "7"]
    )

    console.refuse("sub-live", {"id": "pred-live", "status": "done", "usage": 3}, 422)
    expect(page.locator("#refused tbody tr")).to_have_count(4)
    expect(page.locator("#refused tbody tr").first.locator("td.reason")).to_contain_text("usage")
    expect(page.locator("#minute-summary")).to_have_text("11 callbacks in the last hour, 4 refused")
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=screenshot_dir / "overview-live.png", full_page=True)


def test_forwarding_panel_shows_masked_destinations_and_warnings_live(
    browser: Browser, sqlite_url: str, screenshot_dir: Path
) -> None:
    with running_sink() as sink:
        sink.respond = lambda _request: (410, {})  # the HTTP destination gets disabled
        destinations = (http_destination(sink.url), AMQP_DESTINATION, REDIS_DESTINATION)
        overrides = forwarding_overrides(*destinations)
        with (
            running_console(sqlite_url, clock=WallClock(), **overrides) as console,
            checked_page(browser, console.url) as page,
        ):
            wait_registered(console, 3)
            console.deliver("sub-fwd", callback_body("pred-fwd", "running"))
            console.deliver("sub-fwd", callback_body("pred-fwd"))
            # A 410 and a broker's failures are not stream events: the page is opened once
            # the relay has met both, so it renders them on its first read.
            wait_until(
                lambda: (
                    [
                        (d["kind"], d["enabled"], d["last_error"] is not None)
                        for d in forwarding(console)
                    ]
                    == [("amqp", True, True), ("http", False, True), ("redis", True, False)]
                )
            )
            signed_in(page, console)
            rows = page.locator("#forwarding tbody tr")
            expect(rows).to_have_count(3)
            expect(page.locator("#forwarding-empty")).to_be_hidden()
            http = rows.filter(has_text="http://")
            amqp = rows.filter(has_text="amqp://")
            redis = rows.filter(has_text="redis://")
            host = sink.url.removeprefix("http://")
            expect(http.locator("td.target")).to_have_text(
                f"http://hookuser:***@{host}/hook?token=***"
            )
            expect(amqp.locator("td.target")).to_have_text(
                "amqp://rabbit:***@127.0.0.1:1/vh?exchange=preds&routing_key=all"
            )
            expect(redis.locator("td.target")).to_have_text(
                "redis://:***@127.0.0.1:1/0?stream=preds&events=prediction.failed"
            )
            expect(http.locator("td.backlog")).to_have_text("2")
            expect(amqp.locator("td.backlog")).to_have_text("2")
            expect(redis.locator("td.backlog")).to_have_text("0")  # filtered to failures
            expect(redis.locator("td").nth(2)).to_have_text("events=prediction.failed")
            # Disabled by the 410: the row is flagged; a merely failing broker is not.
            expect(http).to_have_class(re.compile(r"\bwarning\b"))
            expect(http.locator("td.state")).to_contain_text("disabled")
            expect(amqp).not_to_have_class(re.compile(r"\bwarning\b"))
            expect(amqp.locator("td.reason")).not_to_be_empty()

            # The overview's live refresh carries the panel along.
            console.deliver("sub-fwd-2", callback_body("pred-fwd-2", "failed"))
            expect(http.locator("td.backlog")).to_have_text("3")
            expect(redis.locator("td.backlog")).to_have_text("1")
            page.screenshot(path=screenshot_dir / "overview-forwarding.png", full_page=True)
            shown = page.content()
            for secret in FORWARD_CREDENTIALS:
                assert secret not in shown, secret


def test_forwarding_panel_flags_a_destination_with_dead_letters(
    browser: Browser, sqlite_url: str
) -> None:
    with running_sink() as sink:
        sink.respond = lambda _request: (503, {})  # retried until the max age, then given up
        overrides = {**forwarding_overrides(http_destination(sink.url)), "forward_max_age": 1}
        with (
            running_console(sqlite_url, clock=WallClock(), **overrides) as console,
            checked_page(browser, console.url) as page,
        ):
            wait_registered(console, 1)
            console.deliver("sub-dead", callback_body("pred-dead"))
            wait_until(lambda: forwarding(console)[0]["dead_letters"] == 1)
            signed_in(page, console)
            row = page.locator("#forwarding tbody tr")
            expect(row).to_have_count(1)
            expect(row.locator("td.dead-letters")).to_have_text("1")
            expect(row.locator("td.backlog")).to_have_text("0")
            expect(row.locator("td.state")).to_have_text("enabled")
            expect(row).to_have_class(re.compile(r"\bwarning\b"))


def test_filters_and_id_search(page: Page, console: Console, seeded: Seeded) -> None:
    signed_in(page, console)
    rows = page.locator("#predictions tbody tr")
    expect(rows).to_have_count(4)
    page.locator("#filter-status").select_option("failed")
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", seeded.failed)
    page.locator("#filter-status").select_option("")
    expect(rows).to_have_count(4)
    page.locator("#filter-domain").select_option("document.invoice")
    expect(rows).to_have_count(2)
    page.get_by_role("link", name="Reset").click()
    page.locator("#filter-q").fill("sub-invoice-b")
    page.locator("#filter-q").press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", seeded.invalid)
    page.locator("#filter-q").fill("no-such-id")
    page.locator("#filter-q").press("Enter")
    expect(page.locator("#predictions-empty")).to_be_visible()


def test_completed_prediction_detail(
    page: Page, console: Console, seeded: Seeded, screenshot_dir: Path
) -> None:
    signed_in(page, console)
    page.get_by_role("link", name=seeded.completed).click()
    expect(page).to_have_url(f"{console.url}/dashboard/predictions/{seeded.completed}")
    expect(page.locator("#prediction-id")).to_have_text(seeded.completed)
    expect(page.locator("#status-badge")).to_have_text("completed")
    expect(page.locator("#failure")).to_be_hidden()
    expect(page.locator("#timeline li")).to_have_text(
        [re.compile("^running"), re.compile("^completed")]
    )
    usage = page.locator("#usage")
    expect(usage.locator("dt")).to_have_text(["credits used", "elements processed", "element type"])
    expect(usage.locator("dd")).to_have_text(["3", "1", "image"])
    expect(page.locator("#schema-verdict")).to_have_text(re.compile("matches"))
    submission = page.locator("#submission")
    expect(submission).to_contain_text("Extract the invoice total")
    expect(page.locator("#submission-schema")).to_contain_text('"currency"')

    response = page.locator("#response")
    expect(response.locator(".json-key")).to_have_text(['"total"', '"currency"', '"note"'])
    expect(response.locator(".json-number")).to_have_text("42.5")
    page.get_by_role("button", name="Collapse all").click()
    expect(response.locator(".json-key").first).to_be_hidden()
    page.get_by_role("button", name="Expand all").click()
    expect(response.locator(".json-key").first).to_be_visible()
    page.get_by_role("button", name="Show as text").click()
    expect(page.locator("#response-text")).to_contain_text('"total": 42.5')
    page.get_by_role("button", name="Show as tree").click()

    deliveries = page.locator("#deliveries tbody tr")
    expect(deliveries.locator(".verdict")).to_have_text(["rejected", "updated", "stored"])
    expect(deliveries.first.locator("td.reason")).to_contain_text("signature")
    expect(deliveries.nth(1)).to_contain_text("x-vlmrun-signature: sha256=")
    deliveries.nth(1).get_by_role("button", name=re.compile("Show raw body")).click()
    raw = page.locator("#deliveries tr.raw-body pre")
    expect(raw).to_contain_text('"currency":"EUR"')
    page.screenshot(path=screenshot_dir / "prediction-completed.png", full_page=True)
    deliveries.nth(1).get_by_role("button", name="Hide raw body").click()
    expect(raw).to_have_count(0)


def test_failed_prediction_shows_its_error_first(
    page: Page, console: Console, seeded: Seeded, screenshot_dir: Path
) -> None:
    signed_in(page, console)
    page.goto(f"/dashboard/predictions/{seeded.failed}")
    failure = page.locator("#failure")
    expect(failure).to_be_visible()
    # Markup in the error is text, never markup.
    expect(page.locator("#failure-text")).to_have_text(seeded.failure)
    expect(failure.locator("b")).to_have_count(0)
    expect(page.locator("#status-badge")).to_have_text("failed")
    expect(page.locator("#schema-verdict")).to_have_text(re.compile("No json_schema"))
    deliveries = page.locator("#deliveries tbody tr")
    expect(deliveries.locator(".verdict")).to_have_text(["rejected", "stored"])
    expect(deliveries.first.locator("td.reason")).to_contain_text("422")
    page.screenshot(path=screenshot_dir / "prediction-failed.png", full_page=True)


def test_replay_button_shows_a_dry_run_then_replays_on_confirm(
    page: Page, console: Console, seeded: Seeded, screenshot_dir: Path
) -> None:
    # The operator's story: the json_schema was wrong; fix it, then replay the delivery.
    console.fix_json_schema(seeded.invalid_submission, RELAXED_INVOICE_SCHEMA)
    signed_in(page, console)
    page.goto(f"/dashboard/predictions/{seeded.invalid}")
    verdict = page.locator("#schema-verdict")
    expect(verdict).to_have_text(re.compile("does not match"))
    deliveries = page.locator("#deliveries tbody tr .verdict")
    expect(deliveries).to_have_text(["stored"])
    confirm = page.get_by_role("button", name="Confirm replay")
    expect(confirm).to_be_hidden()

    page.get_by_role("button", name="Replay deliveries").click()
    summary = page.locator("#replay-summary")
    expect(summary).to_have_text("Dry run, nothing changed: 1 would update.")
    results = page.locator("#replay-results tbody tr")
    expect(results.locator("td")).to_have_text(
        [re.compile(r"^\d+$"), "stored", "would update", "completed", re.compile("json_schema")]
    )
    expect(confirm).to_be_visible()
    page.screenshot(path=screenshot_dir / "replay-dry-run.png", full_page=True)
    # The dry run changed nothing: the page still shows the old verdict and one delivery.
    expect(verdict).to_have_text(re.compile("does not match"))
    expect(deliveries).to_have_text(["stored"])

    confirm.click()
    expect(summary).to_have_text("Replayed: 1 updated.")
    expect(results.locator(".outcome")).to_have_text(["updated"])
    expect(confirm).to_be_hidden()
    # The page read its data again: the new verdict, and the replay's own delivery row.
    expect(verdict).to_have_text(re.compile("^The response matches"))
    expect(deliveries).to_have_text(["duplicate", "stored"])
    page.screenshot(path=screenshot_dir / "replay-done.png", full_page=True)


def test_html_in_stored_responses_is_shown_as_text(
    page: Page, console: Console, seeded: Seeded
) -> None:
    hostile_id = '<img src=x onerror="window.__pwned=1">&pred'
    console.deliver(
        "sub-hostile",
        callback_body(hostile_id, domain="<b>domain</b>", response={"<b>key</b>": HOSTILE_TEXT}),
    )
    signed_in(page, console)
    link = page.get_by_role("link", name=hostile_id)
    expect(link).to_be_visible()
    expect(page.locator("#predictions tbody").get_by_text("<b>domain</b>")).to_be_visible()
    link.click()
    expect(page.locator("#prediction-id")).to_have_text(hostile_id)
    response = page.locator("#response")
    expect(response.locator(".json-key")).to_have_text('"<b>key</b>"')
    expect(response.locator(".json-string")).to_have_text(json.dumps(HOSTILE_TEXT))
    expect(page.locator("main img, main b, main i, main script")).to_have_count(0)
    assert page.evaluate("window.__pwned") is None


def test_sign_in_and_sign_out(page: Page, console: Console, seeded: Seeded) -> None:
    sign_in(page, key="not-the-key")
    expect(page.locator("#message")).to_have_text("That key is not valid.")
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{console.url}/dashboard")
    expect(card(page, "total")).to_have_text("4")
    # HttpOnly: no script on the page can read the session.
    assert page.evaluate("document.cookie") == ""
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/dashboard"

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#message")).to_have_text("You are signed out.")
    assert page.context.cookies() == []
    page.goto("/dashboard")
    expect(page).to_have_url(re.compile("/dashboard/sign-in"))


def test_no_data_without_a_key(page: Page, console: Console, seeded: Seeded) -> None:
    page.goto(f"/dashboard/predictions/{seeded.completed}")
    expect(page).to_have_url(re.compile(r"/dashboard/sign-in\?next=%2Fdashboard%2Fpredictions"))
    expect(page.get_by_label("API key")).to_be_visible()
    # The form only remembers the page asked for; it shows nothing stored.
    shown = page.locator("body").inner_text()
    for stored in (seeded.completed, seeded.failed, seeded.failure, "document.invoice", "42.5"):
        assert stored not in shown
    assert seeded.failed not in page.content()
    # The data routes and the stream refuse the browser's requests too.
    request = page.context.request
    for path in ("/dashboard/data/overview", f"/dashboard/data/predictions/{seeded.completed}"):
        assert request.get(path).status == 401, path
    assert request.get("/dashboard/events", headers={"Accept": "text/event-stream"}).status == 401
    # A forged cookie buys nothing.
    page.context.add_cookies(
        [{"name": "vlmhooks_session", "value": "forged.cookie.value", "url": console.url}]
    )
    assert request.get("/dashboard/data/overview").status == 401

"""`POST /v1/callback-urls` and `vlm-receiver callback-url --count`: signed URLs for clients
that call VLM Run themselves; each one carries its callback into the receiver."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import httpx
import pytest

from receiver.http.shapes import MAX_CALLBACK_URLS
from receiver.ops import cli
from tests.receiver.lookup_support import AUTH, client, prediction, running_receiver
from vlmhooks.trust.tokens import CALLBACK_PATH_PREFIX, CallbackTokens

TOKEN_KEY = "callback-token-key"  # what lookup_support's receiver signs with
PUBLIC_URL = "https://hooks.example.com"


def _token(url: str) -> str:
    assert url.startswith(PUBLIC_URL + CALLBACK_PATH_PREFIX), url
    return url.removeprefix(PUBLIC_URL + CALLBACK_PATH_PREFIX)


def test_minted_urls_are_signed_fresh_and_distinct(sqlite_url: str) -> None:
    verify = CallbackTokens([TOKEN_KEY]).verify
    with running_receiver(sqlite_url, public_url=PUBLIC_URL) as server, client(server) as http:
        one = http.post("/v1/callback-urls")
        many = http.post("/v1/callback-urls", json={"count": 3})
        bound = http.post("/v1/callback-urls", json={"submission_id": "order-42"})
    assert one.status_code == 201 and one.headers["content-type"] == "application/json"
    (minted,) = one.json()["callback_urls"]
    assert verify(_token(minted["url"])) == minted["submission_id"]
    assert minted["submission_id"].startswith("sub_")
    urls = many.json()["callback_urls"]
    assert len({u["url"] for u in urls}) == len({u["submission_id"] for u in urls}) == 3
    assert all(verify(_token(u["url"])) == u["submission_id"] for u in urls)
    (own,) = bound.json()["callback_urls"]
    assert own["submission_id"] == "order-42" and verify(_token(own["url"])) == "order-42"
    # Seven days (VLMHOOKS_TOKEN_MAX_AGE's default) from now.
    expires = datetime.fromisoformat(one.json()["expires_at"])
    assert 6.9 < (expires - datetime.now(UTC)).total_seconds() / 86400 <= 7


def test_a_minted_url_takes_the_callback(sqlite_url: str) -> None:
    with running_receiver(sqlite_url) as server, client(server) as http:
        (minted,) = http.post("/v1/callback-urls").json()["callback_urls"]
        path = httpx.URL(minted["url"]).path
        stored = http.post(path, json=prediction("from-elsewhere"))
        assert stored.status_code == 200, stored.text
        got = http.get("/v1/predictions/from-elsewhere").json()
    assert got["vlmhooks"]["submission_id"] == minted["submission_id"]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "field"),
    [
        (b'{"count": 0}', "application/json", 422, "count"),
        (f'{{"count": {MAX_CALLBACK_URLS + 1}}}'.encode(), "application/json", 422, "count"),
        (b'{"count": "3"}', "application/json", 422, "count"),
        (b'{"count": 1.5}', "application/json", 422, "count"),
        (b'{"count": true}', "application/json", 422, "count"),
        (b'{"submission_id": ""}', "application/json", 422, "submission_id"),
        (b'{"submission_id": "a\\u0000b"}', "application/json", 422, "submission_id"),
        (b'{"submission_id": "' + b"s" * 65 + b'"}', "application/json", 422, "submission_id"),
        (b'{"count": 2, "submission_id": "x"}', "application/json", 422, "count"),
        (b'{"colour": "blue"}', "application/json", 422, "colour"),
        (b"[1]", "application/json", 422, "<root>"),
        (b"{", "application/json", 400, None),
        (b'{"count": 1}', "text/plain", 415, None),
        (b" " * 5000, "application/json", 413, None),
    ],
)
def test_bad_requests_are_problems(
    sqlite_url: str, content: bytes, content_type: str, status: int, field: str | None
) -> None:
    with running_receiver(sqlite_url) as server, client(server) as http:
        response = http.post(
            "/v1/callback-urls", content=content, headers={"content-type": content_type}
        )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if field is not None:
        assert field in {error["field"] for error in response.json()["errors"]}


def test_minting_needs_a_key_and_takes_no_query(sqlite_url: str) -> None:
    with running_receiver(sqlite_url) as server:
        anonymous = httpx.post(f"{server.url}/v1/callback-urls")
        wrong = httpx.post(
            f"{server.url}/v1/callback-urls", headers={"Authorization": "Bearer nope"}
        )
        query = httpx.post(f"{server.url}/v1/callback-urls?count=3", headers=AUTH)
    assert anonymous.status_code == wrong.status_code == 401
    assert query.status_code == 400 and query.json()["parameter"] == "count"
    # Anonymous reads do not extend to minting credentials.
    with running_receiver(sqlite_url, api_keys=(), allow_anonymous_reads=True) as server:
        refused = httpx.post(f"{server.url}/v1/callback-urls")
    assert refused.status_code == 403 and "VLMHOOKS_API_KEYS" in refused.json()["detail"]


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("VLMHOOKS_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("VLMHOOKS_SECRET_KEYS", TOKEN_KEY)
    monkeypatch.setenv("VLMHOOKS_PUBLIC_URL", PUBLIC_URL)
    return monkeypatch


def test_cli_prints_count_urls(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["callback-url", "--count", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(set(lines)) == 5
    ids = {CallbackTokens([TOKEN_KEY]).verify(_token(line)) for line in lines}
    assert len(ids) == 5


@pytest.mark.parametrize(
    "argv",
    [
        ["--count", "0"],
        ["--count", str(MAX_CALLBACK_URLS + 1)],
        ["--count", "2", "--submission-id", "x"],
    ],
)
def test_cli_refuses_bad_counts_in_one_line(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert cli.main(["callback-url", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--count" in err or "--submission-id" in err

"""Bearer-key auth on the lookup routes and /metrics; callbacks and health checks stay open."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from receiver.errors import AuthError
from receiver.http.auth import key_matches, presented_key
from tests.receiver.lookup_support import API_KEY, OLD_API_KEY, running_receiver

PROTECTED = [
    "/v1/predictions",
    "/v1/predictions/some-id",
    "/v1/submissions/some-id",
    "/v1/deliveries",
    "/v1/events",
    "/dashboard",
    "/metrics",
]
OPEN = ["/healthz", "/readyz", "/openapi.json"]


def test_key_matches_any_configured_key() -> None:
    keys = ["old", "new"]
    assert key_matches(b"old", keys) and key_matches(b"new", keys)
    assert not key_matches(b"ne", keys) and not key_matches(b"newer", keys)
    assert not key_matches(b"", keys) and not key_matches(b"\xffnew", keys)
    assert not key_matches(b"new", [])


def _assert_401(response: httpx.Response, detail: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    problem = response.json()
    assert problem["status"] == 401 and problem["title"] == "Unauthorized"
    assert detail in problem["detail"]


def test_every_auth_failure_is_a_401_problem(sqlite_url: str) -> None:
    # Auth runs before any database access, so one backend is enough.
    failures = [
        ({}, "missing Authorization header"),
        ({"Authorization": f"Basic {API_KEY}"}, "scheme must be Bearer"),
        ({"Authorization": API_KEY}, "scheme must be Bearer"),
        ({"Authorization": "Bearer"}, "credentials are empty"),
        ({"Authorization": "Bearer wrong-key"}, "not valid"),
        ({"Authorization": f"Bearer {API_KEY}x"}, "not valid"),
        ({"Authorization": f"Bearer {API_KEY[:-1]}"}, "not valid"),
        ({"Authorization": "Bearer café".encode()}, "not valid"),
    ]
    with running_receiver(sqlite_url) as server, httpx.Client(base_url=server.url) as http:
        for path in PROTECTED:
            for headers, detail in failures:
                _assert_401(http.get(path, headers=headers), detail)
        # A wrong header is not rescued by a right query token.
        _assert_401(
            http.get(
                "/v1/predictions",
                params={"access_token": API_KEY},
                headers={"Authorization": "Bearer wrong"},
            ),
            "not valid",
        )
        _assert_401(http.get("/v1/predictions", params={"access_token": "wrong"}), "not valid")


def test_rotated_keys_and_query_token_are_accepted(database_url: str) -> None:
    with running_receiver(database_url) as server, httpx.Client(base_url=server.url) as http:
        for key in (API_KEY, OLD_API_KEY):
            for scheme in ("Bearer", "bearer"):
                response = http.get("/v1/predictions", headers={"Authorization": f"{scheme} {key}"})
                assert response.status_code == 200, (key, scheme)
        by_query = http.get("/v1/predictions", params={"access_token": API_KEY})
        assert by_query.status_code == 200
        # Only GET may carry the key in the URL; a HEAD works like GET.
        head = http.head("/v1/predictions", params={"access_token": API_KEY})
        assert head.status_code == 200
        # Callbacks and health checks never ask for a lookup key.
        for path in OPEN:
            assert http.get(path).status_code == 200, path
        callback = http.post("/v1/callbacks/not-a-token", json={"id": "x"})
        assert callback.status_code == 401
        assert "Unauthorized" not in callback.json()["title"]  # the token check, not ours


def test_anonymous_reads_when_explicitly_allowed(sqlite_url: str) -> None:
    with (
        running_receiver(sqlite_url, api_keys=(), allow_anonymous_reads=True) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        for path in ("/v1/predictions", "/v1/deliveries", "/metrics", "/dashboard"):
            assert http.get(path).status_code == 200, path
        assert http.get("/v1/predictions/unknown").status_code == 404
        # With no keys configured, any presented key is simply not needed.
        response = http.get("/v1/predictions", headers={"Authorization": "Bearer anything"})
        assert response.status_code == 200


def test_unsupported_method_is_405_without_auth(sqlite_url: str) -> None:
    with running_receiver(sqlite_url) as server, httpx.Client(base_url=server.url) as http:
        response = http.delete("/v1/predictions/x")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"


def _scope(
    method: str, query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> Any:
    return {"type": "http", "method": method, "query_string": query, "headers": headers or []}


def test_only_get_and_head_may_carry_the_key_in_the_query() -> None:
    query = f"access_token={API_KEY}".encode()
    assert presented_key(_scope("GET", query)) == API_KEY.encode()
    assert presented_key(_scope("HEAD", query)) == API_KEY.encode()
    with pytest.raises(AuthError, match="missing Authorization"):
        presented_key(_scope("POST", query))
    # Header bytes are compared as sent, whatever their charset.
    raw = [(b"authorization", b"Bearer caf\xc3\xa9")]
    assert presented_key(_scope("POST", headers=raw)) == "café".encode()
    assert key_matches(presented_key(_scope("GET", headers=raw)), ["café"])

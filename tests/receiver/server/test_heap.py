"""`vlm-receiver serve`'s app freezes its start-up heap; apps built by `create_app` do not.

A frozen object is never collected, so only a process that builds one app may freeze
(receiver/server/heap.py); the suite itself builds hundreds.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import httpx
import pytest

from receiver.app import create_app, create_app_from_environment
from receiver.server.heap import freeze_startup_heap
from tests.servers import serve
from vlmhooks.settings import Settings

KEY = "heap-key"


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()  # the rest of the suite's garbage must stay collectable


def test_the_served_app_freezes_what_start_up_left(
    unfrozen: None, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    for name in list(os.environ):
        if name.startswith("VLMHOOKS_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("VLMHOOKS_SECRET_KEYS", KEY)
    monkeypatch.setenv("VLMHOOKS_ALLOW_ANONYMOUS_READS", "true")
    app = create_app_from_environment()
    assert gc.get_freeze_count() == 0  # not before start-up: the engines do not exist yet
    with serve(app) as server:
        assert gc.get_freeze_count() > 10_000
        assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_an_app_built_by_create_app_freezes_nothing(unfrozen: None, sqlite_url: str) -> None:
    app = create_app(
        Settings(database_url=sqlite_url, secret_keys=(KEY,), allow_anonymous_reads=True)
    )
    with serve(app) as server:
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert gc.get_freeze_count() == 0


def test_freezing_leaves_later_objects_collectable(unfrozen: None) -> None:
    frozen = freeze_startup_heap()
    assert frozen == gc.get_freeze_count() > 0
    cycle: list[object] = []
    cycle.append(cycle)
    assert gc.is_tracked(cycle)
    del cycle
    assert gc.collect() >= 1  # the new cycle is found; nothing frozen is walked

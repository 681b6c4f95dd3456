"""`vlm-submit get` says where it read from: an explicit --receiver-url beats DATABASE_URL,
and reading the VLM Run API (another shape) is announced, never silent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from submit.cli import EXIT_OK, main
from tests.receiver.lookup_support import prediction
from tests.submit.conftest import API_KEY, LOOKUP_KEY, SandboxFactory
from vlmhooks.store.db import make_engine
from vlmhooks.store.ingest_one import ingest_prediction

ENV_NAMES = ["DATABASE_URL", "VLMRUN_API_KEY", "VLMRUN_BASE_URL", "VLMHOOKS_RECEIVER_URL"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VLMHOOKS_API_KEY", LOOKUP_KEY)
    monkeypatch.chdir(tmp_path)
    yield


def test_explicit_receiver_url_beats_database_url(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    engine: Engine,
    receiver_url: str,
    tmp_path: Path,
) -> None:
    ingest_prediction(engine, prediction("p-remote"), submission_id=None, source="callback")
    # Not a vlmhooks database: opening it at all would fail the command.
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    code = main(["get", "--receiver-url", receiver_url, "p-remote"])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    assert '"id": "p-remote"' in out
    assert err == f"vlm-submit: read from the receiver at {receiver_url}\n"
    assert not (tmp_path / "elsewhere.db").exists()


def test_database_url_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    engine = make_engine(sqlite_url)  # migrated by the fixture
    try:
        ingest_prediction(engine, prediction("p-local"), submission_id=None, source="callback")
    finally:
        engine.dispose()
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    code = main(["get", "p-local"])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    assert err.startswith("vlm-submit: read from the database (sqlite:///")
    assert '"id": "p-local"' in out


def test_falling_back_to_the_api_is_announced(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, sandbox: SandboxFactory
) -> None:
    with sandbox() as api_url:
        monkeypatch.setenv("VLMRUN_BASE_URL", api_url)
        monkeypatch.setenv("VLMRUN_API_KEY", API_KEY)
        main(["get", "pred-unknown"])
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith(f"vlm-submit: read from the VLM Run API at {api_url}")
    assert "neither DATABASE_URL nor --receiver-url/VLMHOOKS_RECEIVER_URL is set" in first
    assert "Traceback" not in err


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999", "http://host:abc"])
def test_a_malformed_receiver_url_is_one_line(capsys: pytest.CaptureFixture[str], url: str) -> None:
    """`urlsplit` raises on an unclosed IPv6 bracket, `.port` on a bad port: not a traceback."""
    assert main(["get", "--receiver-url", url, "p-remote"]) == 2
    err = capsys.readouterr().err
    assert err == f"vlm-submit: error: --receiver-url must be an http(s) URL, got {url!r}\n"

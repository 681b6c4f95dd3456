"""Choosing serverless mode: inside Lambda or forced; SQLite refused in one line unless allowed."""

from __future__ import annotations

import logging

import pytest

from receiver.app import create_app
from receiver.ops.cli import main
from receiver.server.runtime import Runtime, resolve_runtime
from receiver.server.serverless import ServerlessHandler
from tests.receiver.callback_harness import receiver_settings
from tests.receiver.lambda_events import LambdaContext, http_api_v2
from vlmhooks.errors import ConfigError
from vlmhooks.settings import load_settings

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("AWS_LAMBDA_FUNCTION_NAME", "VLMHOOKS_SERVERLESS", "VLMHOOKS_DB_POOLER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    monkeypatch.setenv("VLMHOOKS_SECRET_KEYS", "k1")
    monkeypatch.setenv("VLMHOOKS_API_KEYS", "a1")
    return monkeypatch


def test_lambda_is_detected_and_can_be_overridden(environment: pytest.MonkeyPatch) -> None:
    assert resolve_runtime(load_settings()) == Runtime(serverless=False, pooler="none")
    environment.setenv("AWS_LAMBDA_FUNCTION_NAME", "vlmhooks-receiver")
    assert resolve_runtime(load_settings()).serverless
    environment.setenv("VLMHOOKS_SERVERLESS", "false")
    assert not resolve_runtime(load_settings()).serverless
    environment.delenv("AWS_LAMBDA_FUNCTION_NAME")
    environment.setenv("VLMHOOKS_SERVERLESS", "true")
    assert resolve_runtime(load_settings()).serverless


@pytest.mark.parametrize(
    ("serverless", "pooler", "listens"),
    [
        (False, "none", True),
        (False, "session", True),
        (False, "transaction", False),
        (True, "none", False),
        (True, "transaction", False),
    ],
)
def test_who_listens(serverless: bool, pooler: str, listens: bool) -> None:
    assert Runtime(serverless=serverless, pooler=pooler).listens is listens


def test_pooler_setting_is_checked(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("VLMHOOKS_DB_POOLER", "transaction")
    assert load_settings().db_pooler == "transaction"
    environment.setenv("VLMHOOKS_DB_POOLER", "statement")
    with pytest.raises(ConfigError, match="VLMHOOKS_DB_POOLER"):
        load_settings()


def test_sqlite_is_refused_in_one_line_unless_allowed(sqlite_url: str) -> None:
    settings = receiver_settings(sqlite_url, serverless=True)
    with pytest.raises(ConfigError) as refused:
        create_app(settings)
    detail = refused.value.detail
    assert "\n" not in detail
    assert "serverless mode needs PostgreSQL" in detail
    assert "VLMHOOKS_SERVERLESS_ALLOW_SQLITE=true" in detail
    create_app(receiver_settings(sqlite_url, serverless=True, serverless_allow_sqlite=True))
    create_app(receiver_settings(sqlite_url))  # a server keeps its file: fine


def test_the_handler_reports_a_bad_configuration_in_one_line(
    environment: pytest.MonkeyPatch, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    environment.setenv("AWS_LAMBDA_FUNCTION_NAME", "vlmhooks-receiver")
    environment.setenv("DATABASE_URL", sqlite_url)
    handler = ServerlessHandler()
    event = http_api_v2("GET", "/healthz", headers={})
    with (
        caplog.at_level(logging.ERROR, logger="vlmhooks.serverless"),
        pytest.raises(ConfigError, match="serverless mode needs PostgreSQL"),
    ):
        handler(event, LambdaContext())
    (record,) = caplog.records
    assert record.getMessage().startswith("vlm-receiver: error: serverless mode needs PostgreSQL")
    assert record.exc_info is None
    # Fixed configuration, next invocation: the handler builds and answers.
    environment.setenv("VLMHOOKS_SERVERLESS_ALLOW_SQLITE", "true")
    try:
        assert handler(event, LambdaContext())["statusCode"] == 200
    finally:
        handler.close()


def test_serve_refuses_forced_serverless_on_sqlite(
    environment: pytest.MonkeyPatch, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("DATABASE_URL", sqlite_url)
    environment.setenv("VLMHOOKS_SERVERLESS", "true")
    assert main(["serve"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("vlm-receiver: error: serverless mode needs PostgreSQL")

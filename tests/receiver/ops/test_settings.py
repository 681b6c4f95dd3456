from __future__ import annotations

import subprocess
import sys

import pytest

from vlmhooks.errors import ConfigError
from vlmhooks.settings import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_TOKEN_MAX_AGE_SECONDS,
    Settings,
    load_settings,
)
from vlmhooks.trust.signatures import DEFAULT_TOLERANCE_SECONDS


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("VLMHOOKS_", "VLMRUN_")) or name in {"DATABASE_URL", "PORT"}:
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite:///vlmhooks.db"
    assert settings.port == 8000 and settings.web_concurrency == 1
    assert settings.vlmrun_base_url == "https://api.vlm.run/v1"
    assert settings.token_max_age == DEFAULT_TOKEN_MAX_AGE_SECONDS == 7 * 24 * 3600
    assert settings.signature_tolerance == DEFAULT_TOLERANCE_SECONDS == 300
    assert settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 10 * 1024 * 1024
    assert settings.allow_anonymous_reads is False
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.read_through is True


def test_the_default_public_url_follows_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "5000")  # what honcho and foreman set
    assert load_settings().public_url == "http://127.0.0.1:5000"
    monkeypatch.setenv("VLMHOOKS_PUBLIC_URL", "https://hooks.example.com")
    assert load_settings().public_url == "https://hooks.example.com"


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:hunter2@db/x")
    monkeypatch.setenv("PORT", "5001")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("VLMRUN_API_KEY", "sk-live")
    monkeypatch.setenv("VLMRUN_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("VLMHOOKS_SECRET_KEYS", "old-key, new-key")
    monkeypatch.setenv("VLMHOOKS_API_KEYS", "k1,k2")
    monkeypatch.setenv("VLMHOOKS_STANDARD_WEBHOOK_SECRETS", "whsec_a")
    monkeypatch.setenv("VLMHOOKS_VLMRUN_WEBHOOK_SECRETS", "s1")
    monkeypatch.setenv("VLMHOOKS_SIGNATURE_TOLERANCE", "60")
    monkeypatch.setenv("VLMHOOKS_ALLOW_ANONYMOUS_READS", "true")
    settings = load_settings()
    assert settings.port == 5001 and settings.web_concurrency == 3
    assert settings.require_secret_keys() == ["old-key", "new-key"]
    assert settings.require_lookup_auth() == ["k1", "k2"]
    assert settings.require_vlmrun_api_key() == "sk-live"
    assert settings.signature_tolerance == 60 and settings.allow_anonymous_reads
    assert [s.get_secret_value() for s in settings.standard_webhook_secrets] == ["whsec_a"]


def test_secrets_never_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:hunter2@db/x")
    monkeypatch.setenv("VLMRUN_API_KEY", "sk-live-secret")
    monkeypatch.setenv("VLMHOOKS_SECRET_KEYS", "token-secret")
    monkeypatch.setenv("VLMHOOKS_API_KEYS", "lookup-secret")
    monkeypatch.setenv("VLMHOOKS_VLMRUN_WEBHOOK_SECRETS", "hook-secret")
    text = repr(load_settings()) + str(load_settings())
    for secret in ("hunter2", "sk-live-secret", "token-secret", "lookup-secret", "hook-secret"):
        assert secret not in text


@pytest.mark.parametrize(
    ("method", "variable"),
    [
        ("require_secret_keys", "VLMHOOKS_SECRET_KEYS"),
        ("require_lookup_auth", "VLMHOOKS_API_KEYS"),
        ("require_vlmrun_api_key", "VLMRUN_API_KEY"),
    ],
)
def test_missing_required_secret_names_the_variable(method: str, variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        getattr(Settings(), method)()


def test_anonymous_reads_must_be_explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLMHOOKS_ALLOW_ANONYMOUS_READS", "true")
    assert load_settings().require_lookup_auth() == []


def test_invalid_value_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "eighty")
    with pytest.raises(ConfigError, match=r"^PORT: "):
        load_settings()


def test_cli_refuses_to_start_without_secret_keys(tmp_path: object) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "DATABASE_URL": "sqlite:////tmp/x.db"}
    result = subprocess.run(
        [sys.executable, "-m", "receiver.ops.cli", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "VLMHOOKS_SECRET_KEYS" in lines[0]

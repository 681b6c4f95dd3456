"""`vlm-receiver check` against a real receiver on loopback: every line ok when the pieces match,
and the one piece named when they do not; the self-test callback is never stored."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.applications import Starlette

from receiver.ops import cli
from tests.receiver.callback_harness import (
    NEW_KEY,
    OLD_KEY,
    Receiver,
    receiver_settings,
    running_receiver,
)
from tests.servers import free_port, serve
from vlmhooks.store.tables import WEBHOOK_MESSAGE

VLMRUN_SECRET = "vlmrun-secret-2026"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-secret-32bytes").decode()
OTHER_STANDARD_SECRET = "whsec_" + base64.b64encode(b"another-standard-secret-32-bytes").decode()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> pytest.MonkeyPatch:
    """The checker's environment: the receiver's own configuration, unless a test changes it."""
    for name in list(os.environ):
        if name.startswith("VLMHOOKS_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("VLMHOOKS_SECRET_KEYS", f"{OLD_KEY},{NEW_KEY}")
    monkeypatch.setenv("VLMHOOKS_VLMRUN_WEBHOOK_SECRETS", VLMRUN_SECRET)
    monkeypatch.setenv("VLMHOOKS_STANDARD_WEBHOOK_SECRETS", STANDARD_SECRET)
    return monkeypatch


@pytest.fixture
def receiver(database_url: str) -> Iterator[Receiver]:
    settings = receiver_settings(
        database_url,
        vlmrun_webhook_secrets=(VLMRUN_SECRET,),
        standard_webhook_secrets=(STANDARD_SECRET,),
    )
    with running_receiver(settings) as running:
        yield running


def check(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = cli.main(["check", "--public-url", url, "--timeout", "5"])
    captured = capsys.readouterr()
    return code, captured.out.splitlines()


def test_every_check_passes_and_nothing_is_stored(
    env: pytest.MonkeyPatch, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = check(receiver.url, capsys)
    assert code == 0, lines
    assert [line.split(":")[0] for line in lines] == [
        "ok   database",
        "ok   public URL",
        "ok   callback round trip",
    ]
    assert "standard_webhooks" in lines[2] and "vlmrun_signature" in lines[2]
    assert "not stored (self-test)" in lines[2]
    assert receiver.predictions() == [] and receiver.deliveries() == []
    with receiver.engine.connect() as connection:  # the marker row is gone again
        assert connection.execute(sa.select(WEBHOOK_MESSAGE)).all() == []


@pytest.mark.parametrize(
    ("variable", "value", "piece"),
    [
        ("VLMHOOKS_SECRET_KEYS", "a-key-the-receiver-never-had", "token key"),
        ("VLMHOOKS_VLMRUN_WEBHOOK_SECRETS", "not-the-vlmrun-secret", "VLM Run secret"),
        ("VLMHOOKS_STANDARD_WEBHOOK_SECRETS", OTHER_STANDARD_SECRET, "Standard Webhooks secret"),
    ],
)
def test_a_mismatched_piece_is_named(
    env: pytest.MonkeyPatch,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    piece: str,
) -> None:
    env.setenv(variable, value)
    code, lines = check(receiver.url, capsys)
    assert code == 1
    assert lines[0].startswith("ok   database") and lines[1].startswith("ok   public URL")
    assert lines[2].startswith("FAIL callback round trip")
    assert f"{piece} (" in lines[2] and "does not match" in lines[2], lines[2]
    assert receiver.predictions() == [] and receiver.deliveries() == []


def test_a_secret_the_receiver_does_not_check_is_a_failure(
    env: pytest.MonkeyPatch, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    env.delenv("VLMHOOKS_STANDARD_WEBHOOK_SECRETS")
    # Explicit: Settings would otherwise read the checker's secrets from the environment.
    unsigned = receiver_settings(database_url, vlmrun_webhook_secrets=())
    with running_receiver(unsigned) as receiver:
        code, lines = check(receiver.url, capsys)
    assert code == 1
    assert "VLM Run secret" in lines[2] and "does not check it" in lines[2]


def test_an_unreachable_url(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = check(f"http://127.0.0.1:{free_port()}", capsys)
    assert code == 1
    assert lines[0].startswith("ok   database")
    assert lines[1].startswith("FAIL public URL: URL unreachable")
    assert lines[2] == "FAIL callback round trip: skipped: URL unreachable"


def test_something_else_at_the_url_is_the_wrong_receiver(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(Starlette()) as other:
        code, lines = check(other.url, capsys)
    assert code == 1
    assert lines[1].startswith("FAIL public URL: wrong receiver") and "404" in lines[1]


def test_a_receiver_on_another_database_is_the_wrong_receiver(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vlmhooks.store import migrate
    from vlmhooks.store.db import make_engine

    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    engine = make_engine(elsewhere)
    migrate.upgrade(engine)
    engine.dispose()
    settings = receiver_settings(
        elsewhere,
        vlmrun_webhook_secrets=(VLMRUN_SECRET,),
        standard_webhook_secrets=(STANDARD_SECRET,),
    )
    with running_receiver(settings) as receiver:
        code, lines = check(receiver.url, capsys)
    assert code == 1
    assert lines[2].startswith("FAIL callback round trip: wrong receiver")
    assert "another database" in lines[2]


def test_an_unmigrated_database_fails_its_line(
    env: pytest.MonkeyPatch,
    receiver: Receiver,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()  # SQLite reads an empty file as an empty database
    env.setenv("DATABASE_URL", f"sqlite:///{empty}")
    code, lines = check(receiver.url, capsys)
    assert code == 1
    assert lines[0] == "FAIL database: no schema: run `vlm-receiver db upgrade`"
    # The round trip still tells the secrets apart; it cannot tell the database.
    assert lines[2].startswith("ok   callback round trip")


def test_a_database_file_that_does_not_exist_is_named_and_not_created(
    env: pytest.MonkeyPatch,
    receiver: Receiver,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "typo.db"
    env.setenv("DATABASE_URL", f"sqlite:///{missing}")
    code, lines = check(receiver.url, capsys)
    assert code == 1
    assert lines[0] == (
        f"FAIL database: the database file {missing} does not exist: "
        "run `vlm-receiver db upgrade` to create it"
    )
    assert not missing.exists()
    assert not any(path.name.startswith("typo.db") for path in tmp_path.iterdir())
    assert lines[2].startswith("ok   callback round trip")


def test_a_self_test_token_is_verified_fully_and_expires(receiver: Receiver) -> None:
    from receiver.ingest.selftest import SELF_TEST_MAX_AGE_SECONDS, SelfTestTokens

    fresh = SelfTestTokens([OLD_KEY, NEW_KEY]).mint("n1")
    bad_body = receiver.post(fresh, b'{"id": ""}', {"x-vlmrun-signature": "sha256=" + "0" * 64})
    assert bad_body.status_code == 401 and bad_body.json()["piece"] == "vlmrun_signature"
    old = SelfTestTokens(
        [OLD_KEY, NEW_KEY], clock=lambda: receiver.clock() - SELF_TEST_MAX_AGE_SECONDS - 60
    ).mint("n2")
    expired = receiver.post(old, b"{}")
    assert expired.status_code == 401 and "piece" not in expired.json()
    assert receiver.deliveries() == []

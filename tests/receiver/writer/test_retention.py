"""Delivery retention: durations, `vlm-receiver deliveries prune` in small batches, and `serve`
pruning on its own; predictions are never pruned."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from receiver.ops import cli
from tests.receiver.callback_harness import (
    NEW_KEY,
    Receiver,
    prediction_body,
    receiver_settings,
    running_receiver,
)
from vlmhooks.durations import parse_duration
from vlmhooks.errors import ConfigError
from vlmhooks.settings import load_settings
from vlmhooks.store.db import make_engine
from vlmhooks.store.retention import prune_deliveries

DAY = 86400.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000), (" 7D ", 604800)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "30", "d", "0d", "-1d", "1.5h", "30 days", "1w"])
def test_bad_durations_name_the_format(text: str) -> None:
    with pytest.raises(ValueError, match=r"such as 90s, 15m, 12h or 30d|must be positive"):
        parse_duration(text)


def test_the_setting_is_parsed_once_with_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLMHOOKS_DELIVERY_RETENTION", "30d")
    assert load_settings().delivery_retention == timedelta(days=30)
    monkeypatch.setenv("VLMHOOKS_DELIVERY_RETENTION", "a month")
    with pytest.raises(ConfigError, match="VLMHOOKS_DELIVERY_RETENTION"):
        load_settings()


def fill(database_url: str, *, old: int, recent: int) -> None:
    """`old` deliveries received 40 days ago, then `recent` ones now, each its own prediction."""
    now = [time.time() - 40 * DAY]
    with running_receiver(receiver_settings(database_url), clock=lambda: now[0]) as receiver:
        for n in range(old + recent):
            if n == old:
                now[0] = time.time()
            body = prediction_body(prediction_id=f"pred_{n}")
            assert receiver.post_json(body, token=receiver.token(f"sub_{n}")).status_code == 200


def counts(receiver_or_url: Receiver | str) -> tuple[int, int]:
    if isinstance(receiver_or_url, Receiver):
        return len(receiver_or_url.predictions()), len(receiver_or_url.deliveries())
    with running_receiver(receiver_settings(receiver_or_url)) as receiver:
        return counts(receiver)


def test_prune_deletes_old_deliveries_in_batches_and_keeps_predictions(
    database_url: str,
) -> None:
    fill(database_url, old=5, recent=2)
    engine = make_engine(database_url)
    batches: list[int] = []
    try:
        cutoff = datetime.now(UTC) - timedelta(days=30)
        assert prune_deliveries(engine, cutoff, batch=2, on_batch=batches.append) == 5
        assert prune_deliveries(engine, cutoff, batch=2) == 0
    finally:
        engine.dispose()
    assert batches == [2, 2, 1]
    assert counts(database_url) == (7, 2)


def test_cli_prune_uses_the_setting_or_the_option(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(database_url, old=3, recent=1)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("VLMHOOKS_SECRET_KEYS", NEW_KEY)
    monkeypatch.delenv("VLMHOOKS_DELIVERY_RETENTION", raising=False)
    assert cli.main(["deliveries", "prune"]) == 2
    assert "VLMHOOKS_DELIVERY_RETENTION is not set" in capsys.readouterr().err
    assert cli.main(["deliveries", "prune", "--older-than", "soon"]) == 2
    assert "--older-than" in capsys.readouterr().err

    monkeypatch.setenv("VLMHOOKS_DELIVERY_RETENTION", "60d")
    assert cli.main(["deliveries", "prune"]) == 0
    assert capsys.readouterr().out.startswith("pruned 0 deliveries")
    assert cli.main(["deliveries", "prune", "--older-than", "30d", "--batch", "2"]) == 0
    assert capsys.readouterr().out.startswith("pruned 3 deliveries")
    assert counts(database_url) == (4, 1)


def test_serve_prunes_on_its_own_when_retention_is_set(database_url: str) -> None:
    fill(database_url, old=3, recent=1)
    settings = receiver_settings(database_url, delivery_retention="30d")
    with running_receiver(settings) as receiver:
        deadline = time.monotonic() + 20
        while counts(receiver) != (4, 1):
            assert time.monotonic() < deadline, counts(receiver)
            time.sleep(0.05)
        # Callbacks still flow while the pruner holds its schedule.
        body = prediction_body(prediction_id="pred_new")
        assert receiver.post_json(body, token=receiver.token("sub_new")).status_code == 200
        assert counts(receiver) == (5, 2)


@pytest.mark.parametrize("text", ["36501d", "999999999d", "876001h"])
def test_durations_too_long_to_subtract_from_now_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"must be at most 36500d"):
        parse_duration(text)
    assert parse_duration("36500d") == timedelta(days=36500)

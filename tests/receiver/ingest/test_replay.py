"""Replay: refused signed bodies kept whole, re-ingested by the API and the CLI after a fix,
idempotently; an unknown status survives an upgrade; what can never be replayed says why."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from receiver.ops import cli
from tests.receiver.callback_harness import (
    LOOKUP_KEY,
    NEW_KEY,
    OLD_KEY,
    Receiver,
    encode,
    prediction_body,
    receiver_settings,
    running_receiver,
)
from vlmhooks.store.db import make_engine
from vlmhooks.store.tables import DELIVERY, PREDICTION, SUBMISSION
from vlmhooks.trust.signatures import sign_vlmrun

REPO_ROOT = Path(__file__).resolve().parents[3]
SECRET = "vlmrun-secret-2026"
AUTH = {"authorization": f"Bearer {LOOKUP_KEY}"}
# Below the size of any test body, so an accepted body is always stored cut.
AUDIT_CAP = 64


@pytest.fixture
def receiver(database_url: str) -> Iterator[Receiver]:
    settings = receiver_settings(
        database_url, vlmrun_webhook_secrets=(SECRET,), delivery_body_cap=AUDIT_CAP
    )
    with running_receiver(settings) as running:
        yield running


def post_signed(receiver: Receiver, body: dict[str, Any], *, secret: str = SECRET) -> Any:
    raw = encode(body)
    headers = {"x-vlmrun-signature": sign_vlmrun(secret, raw)}
    return receiver.post(receiver.token(), raw, headers)


def replay(receiver: Receiver, **selection: Any) -> dict[str, Any]:
    response = receiver.client.post("/v1/deliveries/replay", json=selection, headers=AUTH)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def outcomes(report: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(result["outcome"], result["status"]) for result in report["results"]]


def test_signed_refusals_keep_the_whole_body_unsigned_ones_the_audit_cap(
    receiver: Receiver,
) -> None:
    refused = post_signed(receiver, prediction_body(status="cancelled"))
    assert refused.status_code == 422
    forged = post_signed(receiver, prediction_body(), secret="not-the-secret")
    assert forged.status_code == 401
    kept, capped = receiver.deliveries()
    assert kept["verdict"] == "rejected" and not kept["body_truncated"]
    assert kept["body"] == encode(prediction_body(status="cancelled"))
    assert capped["body_truncated"] and len(capped["body"]) == AUDIT_CAP

    report = replay(receiver, verdict=["rejected"], dry_run=True)
    (still, never) = report["results"]
    assert still["outcome"] == "refused" and "422" in still["reason"]
    assert "status" in still["reason"]
    assert never["outcome"] == "refused" and "never authenticated" in never["reason"]
    assert report["dry_run"] and report["counts"] == {"refused": 2}
    assert receiver.predictions() == []


def test_replay_is_idempotent_and_a_dry_run_changes_nothing(receiver: Receiver) -> None:
    receiver.add_submission("sub_1")
    assert post_signed(receiver, prediction_body("running")).status_code == 200
    assert post_signed(receiver, prediction_body("completed")).status_code == 200
    with receiver.engine.begin() as connection:  # as if the row had been lost
        connection.execute(PREDICTION.delete())
    deliveries_before = len(receiver.deliveries())

    dry = replay(receiver, prediction_id="pred_1", dry_run=True)
    # The bodies are over the audit cap: accepted bodies are kept cut, and never replayed.
    assert [r["outcome"] for r in dry["results"]] == ["refused", "refused"]
    assert "cut at 64 bytes" in dry["results"][0]["reason"]
    assert receiver.predictions() == [] and len(receiver.deliveries()) == deliveries_before


def test_replay_recovers_stores_then_answers_duplicate(database_url: str) -> None:
    settings = receiver_settings(database_url, vlmrun_webhook_secrets=(SECRET,))
    with running_receiver(settings) as receiver:
        assert post_signed(receiver, prediction_body("running")).status_code == 200
        assert post_signed(receiver, prediction_body("completed")).status_code == 200
        with receiver.engine.begin() as connection:
            connection.execute(PREDICTION.delete())

        dry = replay(receiver, prediction_id="pred_1", dry_run=True)
        assert outcomes(dry) == [("stored", "running"), ("updated", "completed")]
        assert receiver.predictions() == []

        first = replay(receiver, prediction_id="pred_1")
        assert outcomes(first) == [("stored", "running"), ("updated", "completed")]
        (stored,) = receiver.predictions()
        assert stored["status"] == "completed" and stored["source"] == "replay"

        again = replay(receiver, prediction_id="pred_1")
        assert outcomes(again) == [("stale", "completed"), ("duplicate", "completed")]
        assert receiver.predictions()[0]["body_sha256"] == stored["body_sha256"]
        # The replays are logged, without a second copy of the body, and never replayed.
        replays = [d for d in receiver.deliveries() if d["source"] == "replay"]
        assert len(replays) == 4 and all(d["body"] is None for d in replays)
        assert len(replay(receiver)["results"]) == 2


def test_replay_rechecks_json_schema_verdicts(database_url: str) -> None:
    with running_receiver(receiver_settings(database_url)) as receiver:
        receiver.add_submission("sub_1", json_schema={"type": "object", "required": ["total"]})
        assert receiver.post_json(prediction_body()).status_code == 200
        assert receiver.predictions()[0]["schema_valid"] is True
        stricter = {"type": "object", "required": ["total", "vendor"]}
        with receiver.engine.begin() as connection:
            connection.execute(
                SUBMISSION.update().where(SUBMISSION.c.id == "sub_1").values(json_schema=stricter)
            )

        report = replay(receiver, submission_id="sub_1")
        assert outcomes(report) == [("updated", "completed")]
        assert "json_schema" in report["results"][0]["reason"]
        (row,) = receiver.predictions()
        assert row["schema_valid"] is False and "vendor" in row["schema_errors"][0]
        assert outcomes(replay(receiver, submission_id="sub_1")) == [("duplicate", "completed")]


def test_replay_re_verifies_signatures_with_todays_secrets(database_url: str) -> None:
    settings = receiver_settings(database_url, vlmrun_webhook_secrets=(SECRET,))
    with running_receiver(settings) as receiver:
        assert post_signed(receiver, prediction_body(status="cancelled")).status_code == 422
    rotated = receiver_settings(database_url, vlmrun_webhook_secrets=("a-new-secret",))
    with running_receiver(rotated) as receiver:
        (result,) = replay(receiver, verdict=["rejected"])["results"]
        assert result["outcome"] == "refused"
        assert "401" in result["reason"] and "does not match" in result["reason"]


def test_replay_needs_a_key_and_valid_selectors(database_url: str) -> None:
    with running_receiver(receiver_settings(database_url)) as receiver:
        url = "/v1/deliveries/replay"
        assert receiver.client.post(url, json={}).status_code == 401
        bad = receiver.client.post(url, json={"verdict": ["lost"], "limit": 0}, headers=AUTH)
        assert bad.status_code == 422
        assert {e["field"] for e in bad.json()["errors"]} == {"verdict.0", "limit"}
        for selector in (
            {"after_id": 2**63},
            {"received_after": "0001-01-01T00:00:00+01:00"},
            {"prediction_id": "p\x00"},
            {"unknown": 1},
        ):
            refused = receiver.client.post(url, json=selector, headers=AUTH)
            assert refused.status_code == 422, (selector, refused.text)
        assert receiver.client.post(url, json={"limit": 5000}, headers=AUTH).status_code == 422
        assert receiver.client.post(url, content=b"{", headers=AUTH).status_code == 400
        assert replay(receiver)["results"] == []
    anonymous = receiver_settings(database_url, api_keys=(), allow_anonymous_reads=True)
    with running_receiver(anonymous) as receiver:
        assert receiver.client.post(url, json={}).status_code == 403


def test_replay_pages_with_next_after_id(database_url: str) -> None:
    with running_receiver(receiver_settings(database_url)) as receiver:
        for n in range(3):
            body = prediction_body(prediction_id=f"p{n}")
            assert receiver.post_json(body, token=receiver.token(f"s{n}")).status_code == 200
        first = replay(receiver, limit=2)
        assert len(first["results"]) == 2 and first["next_after_id"] is not None
        rest = replay(receiver, limit=2, after_id=first["next_after_id"])
        assert [r["prediction_id"] for r in rest["results"]] == ["p2"]
        assert rest["next_after_id"] is None


# --- an unknown status, end to end: refused and kept, the contract grows, replay stores it


def upgraded_schemas(tmp_path: Path) -> Path:
    """This tree's `schemas` package with `cancelled` added, as a later release would ship."""
    root = tmp_path / "upgrade"
    shutil.copytree(REPO_ROOT / "schemas", root / "schemas")
    enums = root / "schemas" / "enums.py"
    source = enums.read_text()
    patched = (
        source.replace(
            '    PAUSED = "paused"\n', '    PAUSED = "paused"\n    CANCELLED = "cancelled"\n'
        )
        .replace("    Status.FAILED: 3,\n", "    Status.FAILED: 3,\n    Status.CANCELLED: 3,\n")
        .replace(
            "frozenset({Status.COMPLETED, Status.FAILED})",
            "frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})",
        )
    )
    assert patched.count("CANCELLED") == 3, "the enums module changed: update this test"
    enums.write_text(patched)
    return root


def cli_replay(
    database_url: str, pythonpath: str, *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VLMHOOKS_")},
        "PYTHONPATH": pythonpath,
        "DATABASE_URL": database_url,
        "VLMHOOKS_SECRET_KEYS": f"{OLD_KEY},{NEW_KEY}",
        "VLMHOOKS_VLMRUN_WEBHOOK_SECRETS": SECRET,
    }
    return subprocess.run(
        [sys.executable, "-m", "receiver.ops.cli", "deliveries", "replay", *args],
        env=env,
        # Not the repository: `-m` puts the working directory first on sys.path.
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_unknown_status_is_refused_kept_and_stored_after_an_upgrade(
    database_url: str, tmp_path: Path
) -> None:
    settings = receiver_settings(database_url, vlmrun_webhook_secrets=(SECRET,))
    with running_receiver(settings) as receiver:
        response = post_signed(receiver, prediction_body(status="cancelled"))
        assert response.status_code == 422
        assert "status" in response.json()["detail"]
        (kept,) = receiver.deliveries()
        assert kept["prediction_id"] == "pred_1" and not kept["body_truncated"]

    today = cli_replay(database_url, str(REPO_ROOT), "--verdict", "rejected", cwd=tmp_path)
    assert today.returncode == 0, today.stderr
    assert "refused" in today.stdout and "422" in today.stdout

    upgraded = f"{upgraded_schemas(tmp_path)}{os.pathsep}{REPO_ROOT}"
    dry = cli_replay(database_url, upgraded, "--verdict", "rejected", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "would store [cancelled]" in dry.stdout and "nothing changed" in dry.stdout
    run = cli_replay(database_url, upgraded, "--verdict", "rejected", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert ": stored [cancelled]" in run.stdout
    again = cli_replay(database_url, upgraded, "--verdict", "rejected", cwd=tmp_path)
    assert ": duplicate [cancelled]" in again.stdout

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(PREDICTION.c.id, PREDICTION.c.status)).all()
            verdicts = connection.execute(sa.select(DELIVERY.c.verdict)).scalars().all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [("pred_1", "cancelled")]
    assert verdicts == ["rejected", "stored", "duplicate"]


def test_cli_replay_selects_by_time_and_rejects_bad_options(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_receiver(receiver_settings(database_url)) as receiver:
        assert receiver.post_json(prediction_body()).status_code == 200
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("VLMHOOKS_SECRET_KEYS", NEW_KEY)
    assert cli.main(["deliveries", "replay", "--since", "1h", "--json"]) == 0
    assert '"duplicate": 1' in capsys.readouterr().out
    assert cli.main(["deliveries", "replay", "--until", "2000-01-01T00:00:00"]) == 0
    assert "replayed: 0 deliveries" in capsys.readouterr().out
    assert cli.main(["deliveries", "replay", "--since", "yesterday"]) == 2
    assert "--since" in capsys.readouterr().err

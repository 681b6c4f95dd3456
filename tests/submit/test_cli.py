"""`vlm-submit` in-process: exit codes and the one-line messages a person reads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from schemas.enums import Domain
from submit.cli import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE, main
from tests import children
from tests.submit.conftest import API_KEY, LOOKUP_KEY, SECRET_KEYS, SandboxFactory
from vlmhooks.store.db import make_engine
from vlmhooks.store.tables import PREDICTION

ENV_NAMES = [
    "DATABASE_URL",
    "VLMRUN_API_KEY",
    "VLMRUN_BASE_URL",
    "VLMHOOKS_SECRET_KEYS",
    "VLMHOOKS_PUBLIC_URL",
    "VLMHOOKS_RECEIVER_URL",
    "VLMHOOKS_API_KEY",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # the default SQLite file, if anything makes one, lands here
    yield


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def use_sandbox(monkeypatch: pytest.MonkeyPatch, api_url: str, key: str = API_KEY) -> None:
    monkeypatch.setenv("VLMRUN_BASE_URL", api_url)
    monkeypatch.setenv("VLMRUN_API_KEY", key)


# -- user errors: one line, exit 2, nothing sent ------------------------------------------


def test_bad_domain_lists_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "images", "--domain", "document.invoices", "x.png")
    assert code == EXIT_USAGE
    assert out == ""
    assert err.count("\n") == 1
    assert "unknown domain 'document.invoices'" in err
    assert "Did you mean document.invoice?" in err
    for domain in Domain:
        assert domain.value in err


def test_missing_file_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VLMRUN_API_KEY", API_KEY)
    code, _, err = run(capsys, "images", "--domain", "image.caption", "scans/missing.png")
    assert code == EXIT_USAGE
    assert err == "vlm-submit: error: image path not found: scans/missing.png\n"


def test_unreadable_file_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VLMRUN_API_KEY", API_KEY)
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    code, _, err = run(capsys, "images", "--domain", "image.caption", str(notes))
    assert code == EXIT_USAGE
    assert f"{notes} is not a supported image" in err
    code, _, err = run(capsys, "images", "--domain", "image.caption", str(fifo))
    assert code == EXIT_USAGE
    assert f"{fifo} is not a regular file" in err


def test_bad_json_schema_file_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, image_files: list[Path]
) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text("{not json")
    code, _, err = run(
        capsys, "images", "--domain", "image.caption", "--json-schema", str(schema), "x.png"
    )
    assert code == EXIT_USAGE
    assert f"--json-schema file {schema} is not valid JSON" in err
    code, _, err = run(
        capsys, "images", "--domain", "image.caption", "--json-schema", "nope.json", "x.png"
    )
    assert "cannot read --json-schema file nope.json: No such file or directory" in err


def test_missing_api_key_names_the_variable(
    capsys: pytest.CaptureFixture[str], image_files: list[Path]
) -> None:
    code, _, err = run(capsys, "images", "--domain", "image.caption", str(image_files[0]))
    assert code == EXIT_USAGE
    assert err.startswith("vlm-submit: error: VLMRUN_API_KEY is not set")


def test_batch_without_callback_keys_names_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, image_files: list[Path]
) -> None:
    monkeypatch.setenv("VLMRUN_API_KEY", API_KEY)
    code, _, err = run(capsys, "images", "--domain", "image.caption", str(image_files[0]))
    assert code == EXIT_USAGE
    assert "VLMHOOKS_SECRET_KEYS is not set" in err


def test_wrong_api_key_says_so(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    sandbox: SandboxFactory,
    image_files: list[Path],
) -> None:
    with sandbox() as api_url:
        use_sandbox(monkeypatch, api_url, key="sk-wrong")
        code, out, err = run(
            capsys, "images", "--sync", "--domain", "image.caption", *map(str, image_files)
        )
    assert code == EXIT_USAGE
    assert out == ""
    assert err == (
        "vlm-submit: error: HTTP 401: the API key was rejected (invalid API key); "
        "check VLMRUN_API_KEY\n"
    )


def test_unmigrated_database_says_what_to_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    code, _, err = run(capsys, "get", "pred-1")
    assert code == EXIT_USAGE
    assert "run `vlm-receiver db upgrade`" in err


def test_bad_duration_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "reconcile", "--older-than", "ten minutes")
    assert code == EXIT_USAGE
    assert "--older-than: not a duration: 'ten minutes' (use e.g. 30s, 10m, 2h)" in err


# -- working runs against the sandbox -----------------------------------------------------


def test_sync_jsonl_then_get_from_the_database(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    sandbox: SandboxFactory,
    sqlite_url: str,
    image_files: list[Path],
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    with sandbox() as api_url:
        use_sandbox(monkeypatch, api_url)
        code, out, err = run(
            capsys,
            "images",
            "--sync",
            "--output",
            "jsonl",
            "--domain",
            "image.caption",
            str(image_files[0].parent),
        )
    assert code == EXIT_OK, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["image"] for line in lines] == [str(path) for path in image_files]
    assert {line["status"] for line in lines} == {"completed"}
    assert all(line["response"] is not None for line in lines)
    assert "3 submitted: 3 completed; 0 failed" in err

    code, out, _ = run(capsys, "get", lines[0]["prediction_id"])
    assert code == EXIT_OK
    stored = json.loads(out)
    assert stored["status"] == "completed"
    assert stored["vlmhooks"]["source"] == "sync"
    assert stored["vlmhooks"]["submission_id"] == lines[0]["submission_id"]

    code, out, _ = run(capsys, "get", lines[1]["submission_id"])
    assert json.loads(out)["id"] == lines[1]["prediction_id"]

    code, _, err = run(capsys, "get", "no-such-id")
    assert code == EXIT_FAILED
    assert "no prediction or submission 'no-such-id' is stored yet" in err


def test_batch_wait_reads_the_database_until_callbacks_land(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    sandbox: SandboxFactory,
    database_url: str,
    receiver_url: str,
    image_files: list[Path],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("VLMHOOKS_SECRET_KEYS", ",".join(SECRET_KEYS))
    monkeypatch.setenv("VLMHOOKS_PUBLIC_URL", receiver_url)
    with sandbox(processing_delay=0.2) as api_url:
        use_sandbox(monkeypatch, api_url)
        code, out, err = run(
            capsys,
            "images",
            "--domain",
            "image.caption",
            "--wait",
            "--wait-timeout",
            "20",
            *map(str, image_files),
        )
    assert code == EXIT_OK, err
    assert out.count("completed") == 3
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            sources = connection.execute(sa.select(PREDICTION.c.source)).scalars().all()
    finally:
        engine.dispose()
    assert sources == ["callback"] * 3


def test_wait_without_database_or_receiver_polls_the_api(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    sandbox: SandboxFactory,
    image_files: list[Path],
) -> None:
    with sandbox(processing_delay=0.2) as api_url:
        use_sandbox(monkeypatch, api_url)
        code, out, err = run(
            capsys,
            "images",
            "--no-callback",
            "--wait",
            "--output",
            "jsonl",
            "--domain",
            "image.caption",
            str(image_files[0]),
        )
    assert code == EXIT_OK, err
    (line,) = [json.loads(text) for text in out.splitlines()]
    assert line["status"] == "completed"
    assert line["response"] is not None


def test_wait_timeout_exits_3_naming_what_is_pending(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    sandbox: SandboxFactory,
    image_files: list[Path],
) -> None:
    with sandbox(processing_delay=30) as api_url:
        use_sandbox(monkeypatch, api_url)
        code, out, err = run(
            capsys,
            "images",
            "--no-callback",
            "--wait",
            "--wait-timeout",
            "0.3",
            "--domain",
            "image.caption",
            str(image_files[0]),
        )
    assert code == EXIT_TIMEOUT
    assert "1 prediction(s) still not finished after 0.3 s" in err
    # The way out when a callback never comes.
    assert "`vlm-submit reconcile`" in err
    assert "running" in out or "enqueued" in out


def test_reconcile_heals_a_dropped_callback(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    sandbox: SandboxFactory,
    sqlite_url: str,
    image_files: list[Path],
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("VLMHOOKS_SECRET_KEYS", ",".join(SECRET_KEYS))
    monkeypatch.setenv("VLMHOOKS_PUBLIC_URL", "http://127.0.0.1:9")
    with sandbox(faults="drop") as api_url:
        use_sandbox(monkeypatch, api_url)
        code, out, err = run(
            capsys,
            "images",
            "--output",
            "jsonl",
            "--domain",
            "image.caption",
            *map(str, image_files),
        )
        assert code == EXIT_OK, err
        ids = [json.loads(line)["prediction_id"] for line in out.splitlines()]
        deadline = time.monotonic() + 10
        summary = ""
        while "healed 3" not in summary and time.monotonic() < deadline:
            code, summary, _ = run(capsys, "reconcile", "--older-than", "0s")
            time.sleep(0.05)
    assert summary == "reconcile: checked 3, healed 3, still pending 0, errors 0\n"
    for prediction_id in ids:
        code, out, _ = run(capsys, "get", prediction_id)
        assert json.loads(out)["vlmhooks"]["source"] == "poll"


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_reconcile_every_stops_cleanly(sqlite_url: str, stop: signal.Signals) -> None:
    env = {**os.environ, "DATABASE_URL": sqlite_url, "VLMRUN_API_KEY": API_KEY}
    env["VLMRUN_BASE_URL"] = "http://127.0.0.1:9/v1"  # never called: nothing to reconcile
    process = subprocess.Popen(
        [sys.executable, "-m", "submit.cli", "reconcile", "--every", "0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()  # one pass done: the loop is running
    _, err = children.stop(process, stop, timeout=20)
    assert first == "reconcile: checked 0, healed 0, still pending 0, errors 0\n"
    assert process.returncode == EXIT_OK
    assert "Traceback" not in err
    assert "reconcile: stopped" in err


def test_wait_and_get_through_the_receivers_lookup_api(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    sandbox: SandboxFactory,
    receiver_url: str,
    image_files: list[Path],
) -> None:
    # No DATABASE_URL here: the CLI reads what the receiver stored through its API.
    monkeypatch.setenv("VLMHOOKS_SECRET_KEYS", ",".join(SECRET_KEYS))
    monkeypatch.setenv("VLMHOOKS_PUBLIC_URL", receiver_url)
    monkeypatch.setenv("VLMHOOKS_API_KEY", LOOKUP_KEY)
    with sandbox(processing_delay=0.2) as api_url:
        use_sandbox(monkeypatch, api_url)
        images = [str(path) for path in image_files]
        code, out, err = run(
            capsys,
            "images",
            "--wait",
            "--receiver-url",
            receiver_url,
            "--output",
            "jsonl",
            "--domain",
            "image.caption",
            *images,
        )
        assert code == EXIT_OK, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert {line["status"] for line in lines} == {"completed"}
        assert all(line["response"] is not None for line in lines)

        code, out, _ = run(capsys, "get", "--receiver-url", receiver_url, lines[0]["prediction_id"])
        assert code == EXIT_OK
        assert json.loads(out)["vlmhooks"]["source"] == "callback"

        monkeypatch.setenv("VLMHOOKS_API_KEY", "wrong")
        code, _, err = run(capsys, "get", "--receiver-url", receiver_url, lines[0]["prediction_id"])
    assert code == EXIT_USAGE
    assert "check VLMHOOKS_API_KEY" in err

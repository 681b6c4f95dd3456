"""`vlm-sandbox demo`: the whole loop on loopback ends with every sample stored `completed`."""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from rich.console import Console

from sandbox.cli import main
from sandbox.demo import DemoOptions, run_demo, summarize_response
from sandbox.demo.report import demo_row
from sandbox.samples import SAMPLE_DOMAINS
from sandbox.settings import SandboxConfig
from submit.submitter import SubmitResult
from tests import children

UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
TEMPORARY_DATABASE = re.compile(r"^Database: (\S+) \(temporary", re.MULTILINE)
SAMPLE_COUNT = len(SAMPLE_DOMAINS)


def demo_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sandbox.cli", "demo", *args]


def demo_env() -> dict[str, str]:
    # A VLMHOOKS_SANDBOX_FAULTS in the developer's shell must not change what these tests see.
    return {k: v for k, v in os.environ.items() if not k.startswith("VLMHOOKS_SANDBOX_")}


def query(database: Path, sql: str) -> list[sqlite3.Row]:
    """Read the demo's database with the standard library, independently of the receiver."""
    connection = sqlite3.connect(database)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def assert_all_completed_and_linked(database: Path, count: int = 1) -> list[sqlite3.Row]:
    predictions = query(database, "select * from prediction")
    submissions = {row["id"]: row for row in query(database, "select * from submission")}
    assert len(predictions) == SAMPLE_COUNT * count
    assert len(submissions) == SAMPLE_COUNT * count
    for prediction in predictions:
        assert prediction["status"] == "completed"
        assert prediction["source"] == "callback"
        submission = submissions[prediction["submission_id"]]
        assert submission["prediction_id"] == prediction["id"]
        assert submission["domain"] == prediction["domain"]
        assert submission["batch"] == 1
        assert submission["callback_url"].split("/v1/callbacks/")[1]
        assert submission["error"] is None
    expected = Counter(domain for domain in SAMPLE_DOMAINS.values() for _ in range(count))
    assert Counter(p["domain"] for p in predictions) == expected
    return predictions


class LineReader:
    """Reads a pipe on a thread, so a test can wait for a line without blocking forever."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def text(self) -> str:
        """Everything the stream said, once it has closed."""
        self._thread.join(timeout=30)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)

    def until(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.seen:
                found = re.search(pattern, line)
                if found:
                    return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no line matching {pattern!r} in {''.join(self.seen)!r}")
            try:
                self.seen.append(self.lines.get(timeout=remaining))
            except queue.Empty:
                continue


def test_demo_command_stores_every_sample_completed(tmp_path: Path) -> None:
    database = tmp_path / "kept" / "demo.db"  # the folder does not exist yet
    process = subprocess.run(
        demo_command("--database", str(database)),
        capture_output=True,
        text=True,
        timeout=120,
        env=demo_env(),
    )
    assert process.returncode == 0, process.stderr
    assert "Traceback" not in process.stderr
    out = process.stdout
    assert "Predictions stored by the receiver" in out
    assert f"All {SAMPLE_COUNT} predictions completed and stored" in out
    assert f"Database: {database.resolve()}\n" in out
    for sample, domain in SAMPLE_DOMAINS.items():
        assert re.search(
            rf"│ {re.escape(sample)} +│ {re.escape(domain)} +│ completed +│ +\d+ ms", out
        )
    assert "Evergreen Consulting: total 2219.01 EUR" in out  # the invoice's one-line summary

    predictions = assert_all_completed_and_linked(database)
    assert set(UUID.findall(out)) == {p["id"] for p in predictions}
    deliveries = query(database, "select * from delivery")
    assert [(d["verdict"], d["source"]) for d in deliveries] == [("stored", "callback")] * 4
    # The sandbox signed each callback, and the receiver (holding the same secret) checked it.
    signatures = [json.loads(d["headers"]).get("x-vlmrun-signature", "") for d in deliveries]
    assert all(re.fullmatch("sha256=[0-9a-f]{64}", signature) for signature in signatures)


def test_demo_with_duplicate_and_out_of_order_faults_still_ends_completed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VLMHOOKS_SANDBOX_FAULTS", raising=False)
    database = tmp_path / "faults.db"
    code = main(["demo", "--database", str(database), "--faults", "duplicate=2,out_of_order"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "faults: duplicate=2,out_of_order" in err

    predictions = assert_all_completed_and_linked(database)
    verdicts: dict[str, Counter[str]] = {p["id"]: Counter() for p in predictions}
    for delivery in query(database, "select prediction_id, verdict from delivery"):
        verdicts[delivery["prediction_id"]][delivery["verdict"]] += 1
    # Two copies of `completed`, then two of the stale `running`: one row each, still completed.
    assert list(verdicts.values()) == [Counter(stored=1, duplicate=1, stale=2)] * SAMPLE_COUNT
    # The table waited for the late callbacks, so it tells the whole story.
    assert out.count("4: 1 duplicate, 2 stale") == SAMPLE_COUNT


def test_the_table_waits_for_callbacks_that_come_after_the_terminal_one(tmp_path: Path) -> None:
    # delay: each callback waits 0.4 s, so the stale `running` lands well after `completed`
    # ended the wait; the table must still count it.
    out = io.StringIO()
    options = DemoOptions(
        timeout=60, database=tmp_path / "late.db", faults="out_of_order,delay=0.4"
    )
    code = run_demo(options, SandboxConfig(), out=console(out), err=console(io.StringIO()))
    assert code == 0, out.getvalue()
    assert out.getvalue().count("│ 2: 1 stale ") == SAMPLE_COUNT


def test_demo_count_submits_every_sample_n_times(tmp_path: Path) -> None:
    database = tmp_path / "count.db"
    out = io.StringIO()
    options = DemoOptions(timeout=60, database=database, count=3)
    code = run_demo(options, SandboxConfig(), out=console(out), err=console(io.StringIO()))
    assert code == 0, out.getvalue()
    assert_all_completed_and_linked(database, count=3)
    assert f"All {SAMPLE_COUNT * 3} predictions completed" in out.getvalue()


def console(file: io.StringIO, width: int = 200) -> Console:
    return Console(file=file, width=width, markup=False, highlight=False)


def test_failed_predictions_exit_1_and_the_table_fits_a_narrow_terminal(tmp_path: Path) -> None:
    database = tmp_path / "failed.db"
    out = io.StringIO()
    options = DemoOptions(timeout=60, database=database, faults="fail")
    code = run_demo(options, SandboxConfig(), out=console(out, width=80), err=console(out))
    text = out.getvalue()
    assert code == 1
    assert f"0 of {SAMPLE_COUNT} predictions completed" in text
    assert {row["status"] for row in query(database, "select status from prediction")} == {"failed"}
    stored_ids = {row["id"] for row in query(database, "select id from prediction")}
    table = [line for line in text.splitlines() if line.startswith(("┃", "│", "┏", "└"))]
    assert all(len(line) <= 80 for line in table)
    # Narrow as it is, every id is printed whole: it is what a lookup needs.
    assert set(UUID.findall(text)) == stored_ids
    assert text.count("│ failed ") == SAMPLE_COUNT


def test_dropped_callbacks_are_healed_by_reconcile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "dropped.db"
    code = main(["demo", "--database", str(database), "--faults", "drop", "--timeout", "30"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "no callback will come; healing by polling the API (`vlm-submit reconcile`)" in err
    assert (
        f"reconcile healed {SAMPLE_COUNT} of {SAMPLE_COUNT} predictions (stored with source "
        "'poll')" in err
    )
    assert f"All {SAMPLE_COUNT} predictions completed" in out
    predictions = query(database, "select status, source from prediction")
    assert [tuple(row) for row in predictions] == [("completed", "poll")] * SAMPLE_COUNT
    assert query(database, "select id from delivery where source = 'callback'") == []
    # The table tells the poll from a callback: none came, one answer was fetched.
    columns = table_columns(out)
    assert columns["callbacks"] == ["0"] * SAMPLE_COUNT
    assert columns.get("polls", ["1"] * SAMPLE_COUNT) == ["1"] * SAMPLE_COUNT


def table_columns(out: str) -> dict[str, list[str]]:
    """The printed table's cells by header (rows drawn with │, the header with ┃)."""
    header = next(line for line in out.splitlines() if line.startswith("┃"))
    names = [cell.strip() for cell in header.strip("┃").split("┃")]
    rows = [line.strip("│").split("│") for line in out.splitlines() if line.startswith("│")]
    return {name: [row[i].strip() for row in rows] for i, name in enumerate(names)}


def test_keep_running_serves_lookups_until_ctrl_c_then_cleans_up() -> None:
    with subprocess.Popen(
        demo_command("--keep-running"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=demo_env(),
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        reader = LineReader(process.stdout)
        try:
            reader.until("press Ctrl-C to stop")
            key = reader.until(r"Authorization: Bearer (\S+)'")[1]
            lookup_url = reader.until(r"'(http://127\.0\.0\.1:\d+/v1/predictions/[0-9a-f-]+)'")[1]
            dashboard = reader.until(r"Dashboard: (\S+)")[1]
            database = Path(reader.until(r"Database: (\S+) \(temporary")[1])
            exports = dict(
                found.groups()
                for found in map(re.compile(r"^  export (\w+)=(\S+)$").match, reader.seen)
                if found
            )
            prediction_id = lookup_url.rsplit("/", 1)[1]
            # The exported block is enough for vlm-submit to read the running demo.
            env = {**demo_env(), **exports}
            env.pop("DATABASE_URL")  # through the receiver's API, not its file
            got = subprocess.run(
                [sys.executable, "-m", "submit.cli", "get", prediction_id],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            from_api = httpx.get(
                f"{exports['VLMRUN_BASE_URL']}/predictions/{prediction_id}",
                headers={"Authorization": f"Bearer {exports['VLMRUN_API_KEY']}"},
                timeout=10,
            )
            answer = httpx.get(lookup_url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
            anonymous = httpx.get(lookup_url, timeout=10)
            page = httpx.get(dashboard, headers={"Authorization": f"Bearer {key}"}, timeout=10)
            assert database.exists()
        finally:
            # Bounded: a child that ignores the interrupt is killed, so `with` cannot hang.
            process.send_signal(signal.SIGINT)
            children.wait(process, timeout=30)
        err = process.stderr.read()
        reader.text()
    assert answer.status_code == 200
    assert answer.json()["status"] == "completed"
    assert set(exports) == {
        "VLMRUN_BASE_URL",
        "VLMRUN_API_KEY",
        "VLMHOOKS_PUBLIC_URL",
        "VLMHOOKS_SECRET_KEYS",
        "VLMHOOKS_RECEIVER_URL",
        "VLMHOOKS_API_KEY",
        "DATABASE_URL",
    }
    assert exports["VLMHOOKS_API_KEY"] == key
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["vlmhooks"]["source"] == "callback"
    assert got.stderr.startswith("vlm-submit: read from the receiver at http://127.0.0.1:")
    assert from_api.status_code == 200
    assert anonymous.status_code == 401
    assert page.status_code == 200
    assert process.returncode == 0, err  # Ctrl-C is how --keep-running is meant to end
    assert "Traceback" not in err
    assert not database.parent.exists(), "the temporary database is removed on exit"


def test_ctrl_c_while_waiting_stops_cleanly_with_130() -> None:
    # delay=30: the callbacks are still minutes away when the interrupt comes.
    with subprocess.Popen(
        demo_command("--faults", "delay=30"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=demo_env(),
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        reader = LineReader(process.stderr)
        try:
            database = Path(reader.until(r"database (\S+) \(temporary\)")[1])
            reader.until("waiting for their callbacks")
            time.sleep(0.5)
        finally:
            # Bounded: a child that ignores the interrupt is killed, so `with` cannot hang.
            process.send_signal(signal.SIGINT)
            children.wait(process, timeout=30)
        err = reader.text()
        out = process.stdout.read()
    assert process.returncode == 130
    assert "vlm-sandbox: demo interrupted; servers stopped" in err
    assert "Traceback" not in err
    assert out == ""
    assert not database.parent.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--faults", "duplicate=lots"], "--faults: fault 'duplicate' needs a whole number"),
        (["--database", "."], "--database . is a directory; give a file path"),
    ],
)
def test_user_errors_are_one_line_with_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vlm-sandbox: error: {message}")
    assert err.count("\n") == 1


def test_a_file_that_is_not_a_database_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "notes.db"
    database.write_text("not a database, just notes\n" * 100)
    assert main(["demo", "--database", str(database)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"vlm-sandbox: error: cannot use {database} as the demo database: file is not a database\n"
    )


@pytest.mark.parametrize(
    ("domain", "status", "response", "summary"),
    [
        (
            "document.invoice",
            "completed",
            {"vendor_name": "Northwind", "total": 10.5, "currency": "USD"},
            "Northwind: total 10.5 USD",
        ),
        ("document.receipt", "completed", {"total": 3}, "?: total 3 ?"),
        ("image.caption", "completed", {"caption": "A  red\nmug."}, "A red mug."),
        ("retail.product-catalog", "completed", {"product_name": "Mug", "price": 9}, "Mug: 9 ?"),
        ("document.invoice", "failed", {"error": "bad image"}, "error: bad image"),
        ("document.ocr", "completed", {"text": "x", "_sandbox": {}}, "fields: text"),
        ("image.caption", "completed", None, ""),
        ("image.caption", "completed", "plain", "plain"),
        ("image.caption", "completed", {"caption": "word " * 40}, "word " * 9 + "wo…"),
    ],
)
def test_summaries(domain: str, status: str, response: Any, summary: str) -> None:
    assert summarize_response(domain, status, response) == summary


def test_a_row_counts_callbacks_and_polls_apart() -> None:
    result = SubmitResult(label="invoice.png", submission_id="sub_1", request_id="req_1")
    deliveries = [
        {"source": "poll", "verdict": "stored"},
        {"source": "callback", "verdict": "duplicate"},
        {"source": "callback", "verdict": "stale"},
    ]
    row = demo_row("invoice.png", "document.invoice", result, None, deliveries)
    assert (row.callbacks, row.polls) == ("2: 1 duplicate, 1 stale", 1)
    polled_only = demo_row("invoice.png", "document.invoice", result, None, deliveries[:1])
    assert (polled_only.callbacks, polled_only.polls) == ("0", 1)

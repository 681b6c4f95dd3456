"""Background WAL checkpoints (receiver/wal_checkpoints.py), on real SQLite files: the
WAL-index header is read as SQLite itself reports it, a PASSIVE checkpoint runs once enough
pages wait and copies them without the writer's COMMIT doing it, failures are survived, and
the served app runs the thread, leaves its writer only the rare checkpoint of its own, and
shows the WAL on /metrics."""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.runtime import Runtime, open_engines, wal_checkpointer
from receiver.wal_checkpoints import (
    WRITER_AUTOCHECKPOINT_PAGES,
    WalCheckpointer,
    checkpoint_connection,
    database_file,
    wal_frames,
)
from tests.receiver.callback_harness import (
    LOOKUP_KEY,
    prediction_body,
    receiver_settings,
    running_receiver,
)

SERVER = Runtime(serverless=False, pooler="none")


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A WAL database whose writer never checkpoints by itself."""
    connection = sqlite3.connect(tmp_path / "wal.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    yield connection
    connection.close()


def write_pages(connection: sqlite3.Connection, commits: int) -> None:
    """`commits` transactions of a few pages each (3 KB rows in 4 KiB pages)."""
    for _ in range(commits):
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("INSERT INTO t (body) VALUES (?)", [("x" * 3000,)] * 4)
        connection.execute("COMMIT")


def wait_for(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_header_says_what_sqlite_reports(tmp_path: Path, writer: sqlite3.Connection) -> None:
    database = str(tmp_path / "wal.db")
    write_pages(writer, 10)
    frames, copied = wal_frames(database) or (0, 0)
    assert frames > 10 and copied == 0
    other = sqlite3.connect(database, isolation_level=None)
    busy, log_frames, checkpointed = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    other.close()
    assert (busy, log_frames, checkpointed) == (0, frames, frames)
    assert wal_frames(database) == (frames, frames)


def test_no_wal_index_or_a_foreign_one_reads_as_none(tmp_path: Path) -> None:
    database = str(tmp_path / "none.db")
    assert wal_frames(database) is None
    Path(database + "-shm").write_bytes(b"\x00" * 50)  # too short
    assert wal_frames(database) is None
    Path(database + "-shm").write_bytes(b"\x01" * 200)  # not version 3007000
    assert wal_frames(database) is None


def test_it_checkpoints_only_once_enough_pages_wait(
    tmp_path: Path, writer: sqlite3.Connection
) -> None:
    database = str(tmp_path / "wal.db")
    checkpointer = WalCheckpointer(database, pending_pages=64)
    reader = sqlite3.connect(database, isolation_level=None)
    write_pages(writer, 5)
    assert not checkpointer.checkpoint_if_due(reader)
    assert (wal_frames(database) or (0, 1))[1] == 0  # nothing copied
    write_pages(writer, 40)
    assert checkpointer.checkpoint_if_due(reader)
    frames, copied = wal_frames(database) or (0, 0)
    assert frames >= 64 and copied == frames
    assert checkpointer.checkpoints == 1
    reader.close()


def test_its_connection_fsyncs_what_it_copies(tmp_path: Path, writer: sqlite3.Connection) -> None:
    """The writer may rewind the WAL after this connection's checkpoint: FULL, so the pages
    it copied are on disk first."""
    connection = checkpoint_connection(str(tmp_path / "wal.db"))
    try:
        assert connection.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    finally:
        connection.close()


def test_the_thread_copies_pages_the_writer_never_checkpoints(
    tmp_path: Path, writer: sqlite3.Connection
) -> None:
    database = str(tmp_path / "wal.db")
    checkpointer = WalCheckpointer(database, pending_pages=32, poll_seconds=0.01)
    checkpointer.start()
    try:
        write_pages(writer, 20)
        wait_for(lambda: (wal_frames(database) or (0, 0))[1] > 0)
        # Writes go on while it works: the WAL stays readable and complete.
        write_pages(writer, 20)
        wait_for(lambda: checkpointer.checkpoints >= 2)
        assert writer.execute("SELECT count(*) FROM t").fetchone() == (160,)
    finally:
        checkpointer.stop()
    assert not any(t.name == "vlmhooks-checkpoint" for t in threading.enumerate())


def test_a_failing_checkpoint_is_logged_once_and_retried(
    tmp_path: Path, writer: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    database = str(tmp_path / "wal.db")
    attempts: list[str] = []

    def flaky_connect(path: str) -> sqlite3.Connection:
        attempts.append(path)
        if len(attempts) <= 3:
            raise sqlite3.OperationalError("unable to open database file")
        return sqlite3.connect(path, isolation_level=None, timeout=0)

    checkpointer = WalCheckpointer(
        database, pending_pages=32, poll_seconds=0.01, connect=flaky_connect
    )
    write_pages(writer, 20)
    with caplog.at_level(logging.WARNING, logger="vlmhooks.checkpoints"):
        checkpointer.start()
        try:
            wait_for(lambda: checkpointer.checkpoints >= 1)
        finally:
            checkpointer.stop()
    failures = [r for r in caplog.records if "checkpoint" in r.getMessage()]
    assert len(attempts) >= 4
    assert len(failures) == 1  # rate-limited: one line, not one per poll
    assert "unable to open database file" in failures[0].getMessage()


def test_the_served_writer_leaves_checkpoints_to_the_thread(sqlite_url: str) -> None:
    engine, write_engine = open_engines(receiver_settings(sqlite_url), SERVER)
    try:
        with write_engine.connect() as connection:
            pages = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        with engine.connect() as connection:
            default = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert (pages, default) == (WRITER_AUTOCHECKPOINT_PAGES, 1000)
        checkpointer = wal_checkpointer(write_engine, SERVER)
        assert checkpointer is not None
        assert checkpointer.database == database_file(write_engine.url.database)
    finally:
        engine.dispose()
        write_engine.dispose()


def test_serverless_and_in_memory_keep_sqlite_own_checkpoints(sqlite_url: str) -> None:
    serverless = Runtime(serverless=True, pooler="none")
    engine, write_engine = open_engines(receiver_settings(sqlite_url), serverless)
    try:
        with write_engine.connect() as connection:
            pages = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert pages == 1000
        assert wal_checkpointer(write_engine, serverless) is None
    finally:
        engine.dispose()
        write_engine.dispose()
    assert database_file(":memory:") is None
    assert database_file(None) is None


def test_a_serving_receiver_checkpoints_in_the_background(sqlite_url: str) -> None:
    database = database_file(sqlite_url.removeprefix("sqlite:///"))
    assert database is not None
    with running_receiver(receiver_settings(sqlite_url)) as receiver:
        assert any(t.name == "vlmhooks-checkpoint" for t in threading.enumerate())
        body = prediction_body(response={"text": "y" * 6000})
        for number in range(120):
            body["id"] = f"pred_{number}"
            token = receiver.token(f"sub_{number}")
            assert receiver.post_json(body, token=token).status_code == 200
        # Far below the writer's own 4,096 pages: only the thread can have copied these.
        wait_for(lambda: (wal_frames(database) or (0, 0))[1] > 0)
        frames, _copied = wal_frames(database) or (0, 0)
        assert frames < WRITER_AUTOCHECKPOINT_PAGES
        # The same header on /metrics, read at the scrape.
        headers = {"authorization": f"Bearer {LOOKUP_KEY}"}
        text = receiver.client.get("/metrics", headers=headers).text
        gauges = dict(re.findall(r'vlmhooks_sqlite_wal_frames\{kind="(\w+)"\} ([0-9.e+]+)', text))
        logged, pending = float(gauges["logged"]), float(gauges["pending"])
        assert 0 < logged < WRITER_AUTOCHECKPOINT_PAGES
        assert 0 <= pending < logged
    assert not any(t.name == "vlmhooks-checkpoint" for t in threading.enumerate())

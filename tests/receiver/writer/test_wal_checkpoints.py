"""Background WAL checkpoints (receiver/writer/wal_checkpoints.py), on real SQLite files: each
checkpoint reports what SQLite reports and copies what the writer never checkpoints, the
connection fsyncs what it copies, failures are survived, the served app runs the thread and
leaves its writer only the rare checkpoint of its own, and nothing that reads the WAL's
state ever drops the POSIX locks SQLite holds in this process."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from receiver.live.fanout import SqliteChanges
from receiver.server.runtime import Runtime, open_engines, wal_checkpointer
from receiver.writer.wal_checkpoints import (
    WRITER_AUTOCHECKPOINT_PAGES,
    WalCheckpointer,
    checkpoint_connection,
)
from tests.receiver.callback_harness import (
    LOOKUP_KEY,
    Receiver,
    prediction_body,
    receiver_settings,
    running_receiver,
)
from vlmhooks.store.db import make_engine, sqlite_file

SERVER = Runtime(serverless=False, pooler="none")
# The WAL-index's "DMS" byte: every connection with the WAL open holds a read lock on it,
# and a process that finds it unlocked takes the database for unused (SQLite's os_unix.c).
DMS_OFFSET = 128
_PROBE = """
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
request = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, int(sys.argv[2]), 1, 0)
answer = fcntl.fcntl(fd, fcntl.F_GETLK, request)
kind, _whence, _start, _length, pid = struct.unpack("hhqqi4x", answer)
print(0 if kind == fcntl.F_UNLCK else pid)
"""


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


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def dms_lock_holder(database: str) -> int:
    """From another process: the pid holding a lock on the WAL-index's DMS byte, else 0."""
    found = subprocess.run(
        [sys.executable, "-c", _PROBE, database + "-shm", str(DMS_OFFSET)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(found.stdout)


def test_a_checkpoint_reports_and_copies_what_the_writer_left(
    tmp_path: Path, writer: sqlite3.Connection
) -> None:
    database = str(tmp_path / "wal.db")
    checkpointer = WalCheckpointer(database)
    connection = checkpoint_connection(database)
    reader = sqlite3.connect(database, isolation_level=None)
    try:
        write_pages(writer, 10)
        # A reader's snapshot holds back what was committed after it.
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchone()
        write_pages(writer, 5)
        logged, copied = checkpointer.checkpoint(connection)
        assert 0 < copied < logged
        assert (checkpointer.logged_frames, checkpointer.uncopied_frames) == (
            logged,
            logged - copied,
        )
        reader.execute("COMMIT")
        assert checkpointer.checkpoint(connection) == (logged, logged)
        assert checkpointer.uncopied_frames == 0
        assert checkpointer.checkpoints == 2
    finally:
        reader.close()
        connection.close()


def test_its_connection_fsyncs_what_it_copies(
    tmp_path: Path, writer: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer may rewind the WAL after this connection's checkpoint: FULL, so the pages
    it copied are on disk first, whatever the connection started with (here OFF)."""
    connect = sqlite3.connect

    def connect_without_syncs(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = connect(*args, **kwargs)
        connection.execute("PRAGMA synchronous=OFF")
        return connection

    monkeypatch.setattr(sqlite3, "connect", connect_without_syncs)
    connection = checkpoint_connection(str(tmp_path / "wal.db"))
    try:
        assert connection.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    finally:
        connection.close()


def test_the_thread_copies_pages_the_writer_never_checkpoints(
    tmp_path: Path, writer: sqlite3.Connection
) -> None:
    database = str(tmp_path / "wal.db")
    # A timer far beyond the test: only the committed writes can wake the thread.
    checkpointer = WalCheckpointer(database, interval_seconds=3600, writes_per_checkpoint=10)
    checkpointer.start()
    try:
        write_pages(writer, 20)
        checkpointer.note_writes(9)
        time.sleep(0.2)
        assert checkpointer.checkpoints == 0  # not enough writes yet
        checkpointer.note_writes(1)
        wait_for(lambda: checkpointer.checkpoints == 1)
        assert checkpointer.logged_frames > 20 and checkpointer.uncopied_frames == 0
        # Writes go on while it works: the WAL stays readable and complete.
        write_pages(writer, 20)
        checkpointer.note_writes(10)
        wait_for(lambda: checkpointer.checkpoints == 2)
        assert checkpointer.logged_frames > 40 and checkpointer.uncopied_frames == 0
        assert writer.execute("SELECT count(*) FROM t").fetchone() == (160,)
    finally:
        checkpointer.stop()
    assert not any(t.name == "vlmhooks-checkpoint" for t in threading.enumerate())


def test_without_writes_here_the_timer_still_checkpoints(
    tmp_path: Path, writer: sqlite3.Connection
) -> None:
    """Writes from other processes (the relay, a CLI) are never noted here: the timer."""
    database = str(tmp_path / "wal.db")
    checkpointer = WalCheckpointer(database, interval_seconds=0.01)
    write_pages(writer, 20)
    checkpointer.start()
    try:
        wait_for(lambda: checkpointer.checkpoints >= 1)
        assert checkpointer.logged_frames > 20 and checkpointer.uncopied_frames == 0
    finally:
        checkpointer.stop()


def test_a_failing_checkpoint_is_logged_once_and_retried(
    tmp_path: Path, writer: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    database = str(tmp_path / "wal.db")
    attempts: list[str] = []

    def flaky_connect(path: str) -> sqlite3.Connection:
        attempts.append(path)
        if len(attempts) <= 3:
            raise sqlite3.OperationalError("unable to open database file")
        return checkpoint_connection(path)

    checkpointer = WalCheckpointer(database, interval_seconds=0.01, connect=flaky_connect)
    write_pages(writer, 20)
    with caplog.at_level(logging.WARNING, logger="vlmhooks.checkpoints"):
        checkpointer.start()
        try:
            wait_for(lambda: checkpointer.checkpoints >= 1)
        finally:
            checkpointer.stop()
    failures = [r for r in caplog.records if "checkpoint" in r.getMessage()]
    assert len(attempts) >= 4
    assert len(failures) == 1  # rate-limited: one line, not one per attempt
    assert "unable to open database file" in failures[0].getMessage()
    assert checkpointer.uncopied_frames == 0


def test_reading_the_wal_state_keeps_the_locks_sqlite_holds(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops every POSIX lock the process holds on it. An
    earlier version read the WAL-index header with open(): another process then took the
    database for unused, and acknowledged writes were lost. The checkpointer and the
    change detector go through SQLite, which keeps its descriptors while they hold locks."""
    database = str(tmp_path / "locks.db")
    engine = make_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as held:
            held.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            held.exec_driver_sql("SELECT count(*) FROM t").scalar()
            assert dms_lock_holder(database) == os.getpid()
            changes = SqliteChanges(database)
            assert changes() == changes()
            changes.close()
            checkpointer = WalCheckpointer(database)
            connection = checkpoint_connection(database)
            checkpointer.checkpoint(connection)
            connection.close()
            assert dms_lock_holder(database) == os.getpid()
            # What the earlier version did, for contrast: the lock is gone.
            with open(database + "-shm", "rb") as index:
                index.read(136)
            assert dms_lock_holder(database) == 0
    finally:
        engine.dispose()


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
        assert checkpointer.database == sqlite_file(write_engine.url.database)
    finally:
        engine.dispose()
        write_engine.dispose()


def test_serverless_keeps_sqlite_own_checkpoints(sqlite_url: str) -> None:
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
    assert sqlite_file(":memory:") is None
    assert sqlite_file(None) is None


def test_a_serving_receiver_checkpoints_in_the_background(sqlite_url: str) -> None:
    headers = {"authorization": f"Bearer {LOOKUP_KEY}"}

    def wal_gauges(served: Receiver) -> dict[str, float]:
        text = served.client.get("/metrics", headers=headers).text
        found = re.findall(r'vlmhooks_sqlite_wal_frames\{kind="(\w+)"\} ([0-9.e+]+)', text)
        return {kind: float(value) for kind, value in found}

    with running_receiver(receiver_settings(sqlite_url)) as receiver:
        assert any(t.name == "vlmhooks-checkpoint" for t in threading.enumerate())
        body = prediction_body(response={"text": "y" * 6000})
        for number in range(120):
            body["id"] = f"pred_{number}"
            token = receiver.token(f"sub_{number}")
            assert receiver.post_json(body, token=token).status_code == 200
        # Far below the writer's own 4,096 pages: only the thread can have copied them all.
        wait_for(lambda: wal_gauges(receiver).get("logged", 0) > 100)
        wait_for(lambda: wal_gauges(receiver).get("uncopied", -1) == 0)
        assert wal_gauges(receiver)["logged"] < WRITER_AUTOCHECKPOINT_PAGES
    assert not any(t.name == "vlmhooks-checkpoint" for t in threading.enumerate())

"""WAL checkpoints from a thread and a connection of their own, so no batch waits for one.

SQLite's default: the connection whose COMMIT takes the WAL past 1,000 pages copies them
into the database file, and fsyncs it, inside that COMMIT. On the receiver, now and then
one batch did that, and every request queued behind it waited too (bench/README.md, "Issue
13, fifth pass"). So the write engine checkpoints itself only past 4,096 pages
(`WRITER_AUTOCHECKPOINT_PAGES`), and this thread runs a PASSIVE checkpoint (one that never
waits for, nor blocks, the writer) after every `WRITES_PER_CHECKPOINT` committed writes
(`note_writes`, from the group committer), and at least once a second for writes from
other processes. When nothing is waiting it does nothing, not even an fsync. When the
writer's own checkpoint comes due it finds nearly every page copied already: it copies
the last few, and SQLite rewinds the WAL at the next batch.

Why the writer keeps a checkpoint of its own: SQLite rewinds the WAL only when a write
transaction starts with every frame copied, which a checkpoint from another connection
almost never achieves under load (new commits overtake it), so the WAL would grow without
bound. A dead or stopped checkpointer leaves SQLite's own mechanism in charge.

Everything goes through SQLite: this module never opens the database's files itself.
Closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
included, and another process then takes the database for unused: it may rewind or delete
a WAL this one still reads (https://sqlite.org/howtocorrupt.html, 2.2). An earlier version
read the WAL-index header with `open()` and lost acknowledged writes in two workers.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import Gauge

__all__ = [
    "CHECKPOINT_INTERVAL_SECONDS",
    "WRITER_AUTOCHECKPOINT_PAGES",
    "WRITES_PER_CHECKPOINT",
    "WalCheckpointer",
    "checkpoint_connection",
]

WRITER_AUTOCHECKPOINT_PAGES = 4096
# Sized from the WAL pages a committed write adds (bench/README.md, "Issue 13, fifth pass"):
# a fraction of SQLite's own 1,000-page step, so each background checkpoint stays small.
WRITES_PER_CHECKPOINT = 200
CHECKPOINT_INTERVAL_SECONDS = 1.0
ERROR_LOG_INTERVAL_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0

log = logging.getLogger("vlmhooks.checkpoints")


class WalCheckpointer:
    """Copies WAL pages into the SQLite file at `database` in the background (PASSIVE)."""

    def __init__(
        self,
        database: str,
        *,
        interval_seconds: float = CHECKPOINT_INTERVAL_SECONDS,
        writes_per_checkpoint: int = WRITES_PER_CHECKPOINT,
        connect: Callable[[str], sqlite3.Connection] | None = None,
    ) -> None:
        self.database = database
        self._connect = connect or checkpoint_connection
        self._interval = interval_seconds
        self._writes_per_checkpoint = writes_per_checkpoint
        self._writes = 0
        self._due = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error_logged = -ERROR_LOG_INTERVAL_SECONDS
        self.checkpoints = 0  # checkpoints run, for tests and the curious
        # What the last checkpoint saw: frames in the WAL, and those it could not copy (a
        # reader's snapshot still needs them); on /metrics through `export_frames`.
        self.logged_frames = 0
        self.uncopied_frames = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="vlmhooks-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stopping.set()
        self._due.set()
        self._thread.join(timeout=STOP_TIMEOUT_SECONDS)
        self._thread = None

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while True:
                self._due.wait(self._interval)
                self._due.clear()
                if self._stopping.is_set():
                    break
                try:
                    if connection is None:
                        connection = self._connect(self.database)
                    self.checkpoint(connection)
                except (sqlite3.Error, OSError) as exc:
                    self._log_error(exc)
                    if connection is not None:
                        connection.close()
                        connection = None
        finally:
            if connection is not None:
                connection.close()

    def note_writes(self, count: int) -> None:
        """`count` writes were committed here (the group committer's hook, on its thread):
        the thread checkpoints once enough have added up. A lost update between threads
        only moves one checkpoint by a batch."""
        self._writes += count
        if self._writes >= self._writes_per_checkpoint:
            self._writes = 0
            self._due.set()

    def checkpoint(self, connection: sqlite3.Connection) -> tuple[int, int]:
        """One PASSIVE checkpoint on `connection`: (frames in the WAL, frames in the database
        file), as SQLite reports them; (-1, -1) when the database is not in WAL mode."""
        busy, logged, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if not busy and logged >= 0:  # busy: another checkpointer was at it
            self.logged_frames, self.uncopied_frames = logged, logged - copied
            self.checkpoints += 1
        return logged, copied

    def export_frames(self, gauge: Gauge) -> None:
        """`gauge{kind=logged|uncopied}`, as the last checkpoint saw the WAL."""
        gauge.labels("logged").set_function(lambda: self.logged_frames)
        gauge.labels("uncopied").set_function(lambda: self.uncopied_frames)

    def _log_error(self, error: Exception) -> None:
        # A failing checkpoint costs nothing but WAL size (the writer's own still runs):
        # one line a minute, not one per poll.
        now = time.monotonic()
        if now - self._last_error_logged >= ERROR_LOG_INTERVAL_SECONDS:
            self._last_error_logged = now
            log.warning("a background WAL checkpoint of %s failed: %s", self.database, error)


def checkpoint_connection(database: str) -> sqlite3.Connection:
    """The checkpointer's own connection to `database`."""
    # A PASSIVE checkpoint never waits for the writer or readers; the short timeout only
    # covers opening the WAL while another process recovers it.
    connection = sqlite3.connect(database, isolation_level=None, timeout=1.0)
    # FULL, whatever the build's default: the checkpoint must fsync the database file after
    # copying. When the writer's own checkpoint later finds every page already copied, it
    # copies (and syncs) nothing, and SQLite rewinds the WAL: pages this connection copied
    # without an fsync could then be lost to a power cut.
    connection.execute("PRAGMA synchronous=FULL")
    return connection

"""WAL checkpoints from a thread and a connection of their own, so no batch waits for one.

SQLite's default: the connection whose COMMIT takes the WAL past 1,000 pages copies them
into the database file, and fsyncs it, inside that COMMIT. On the receiver, one batch in
every ~60 did that, and every request queued behind it waited too (bench/README.md, "Issue
13, fifth pass"). So the write engine checkpoints itself only past 4,096 pages
(`WRITER_AUTOCHECKPOINT_PAGES`), and this thread, watching the WAL-index header, runs a
PASSIVE checkpoint (one that never waits for, nor blocks, the writer) whenever 256 pages
are waiting. When the writer's own checkpoint comes due it finds nearly every page copied
already: it copies the last few, and SQLite rewinds the WAL at the next batch.

Why the writer keeps a checkpoint of its own: SQLite rewinds the WAL only when a write
transaction starts with every frame copied, which a checkpoint from another connection
almost never achieves under load (new commits overtake it), so the WAL would grow without
bound. A dead or stopped checkpointer leaves SQLite's own mechanism in charge.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import Gauge

__all__ = [
    "CHECKPOINT_PENDING_PAGES",
    "WRITER_AUTOCHECKPOINT_PAGES",
    "WalCheckpointer",
    "checkpoint_connection",
    "database_file",
    "export_wal_frames",
    "wal_frames",
]

WRITER_AUTOCHECKPOINT_PAGES = 4096
CHECKPOINT_PENDING_PAGES = 256
POLL_SECONDS = 0.05
ERROR_LOG_INTERVAL_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0

# The WAL-index header (https://sqlite.org/walformat.html, "The WAL-Index Header"), in the
# host's byte order: iVersion at 0, mxFrame (frames in the WAL) at 16; then, after the
# header's two copies, the checkpoint info with nBackfill (frames already copied) at 96.
_WAL_INDEX_VERSION = 3007000
_HEADER = struct.Struct("=I12xI76xI")

log = logging.getLogger("vlmhooks.checkpoints")


def wal_frames(database: str) -> tuple[int, int] | None:
    """(frames in the WAL, frames already copied into the database) from the WAL-index
    header; None while there is no WAL, or its index is not one this reads."""
    try:
        with open(database + "-shm", "rb") as index:
            head = index.read(_HEADER.size)
    except FileNotFoundError:
        return None
    if len(head) < _HEADER.size:
        return None
    version, frames, copied = _HEADER.unpack(head)
    if version != _WAL_INDEX_VERSION:
        return None
    return frames, copied


class WalCheckpointer:
    """Copies WAL pages into the SQLite file at `database` in the background (PASSIVE)."""

    def __init__(
        self,
        database: str,
        *,
        pending_pages: int = CHECKPOINT_PENDING_PAGES,
        poll_seconds: float = POLL_SECONDS,
        connect: Callable[[str], sqlite3.Connection] | None = None,
    ) -> None:
        self.database = database
        self._connect = connect or checkpoint_connection
        self._pending_pages = pending_pages
        self._poll_seconds = poll_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error_logged = -ERROR_LOG_INTERVAL_SECONDS
        self.checkpoints = 0  # completed PASSIVE runs, for tests and the curious

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
        self._thread.join(timeout=STOP_TIMEOUT_SECONDS)
        self._thread = None

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while not self._stopping.wait(self._poll_seconds):
                try:
                    if connection is None:
                        connection = self._connect(self.database)
                    self.checkpoint_if_due(connection)
                except (sqlite3.Error, OSError) as exc:
                    self._log_error(exc)
                    if connection is not None:
                        connection.close()
                        connection = None
        finally:
            if connection is not None:
                connection.close()

    def checkpoint_if_due(self, connection: sqlite3.Connection) -> bool:
        """One look at the WAL: a PASSIVE checkpoint if enough pages wait; True if it ran."""
        frames = wal_frames(self.database)
        if frames is None or frames[0] - frames[1] < self._pending_pages:
            return False
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self.checkpoints += 1
        return True

    def _log_error(self, error: Exception) -> None:
        # A failing checkpoint costs nothing but WAL size (the writer's own still runs):
        # one line a minute, not one per poll.
        now = time.monotonic()
        if now - self._last_error_logged >= ERROR_LOG_INTERVAL_SECONDS:
            self._last_error_logged = now
            log.warning("a background WAL checkpoint of %s failed: %s", self.database, error)


def export_wal_frames(gauge: Gauge, database: str) -> None:
    """`gauge{kind=logged|pending}`: the WAL's frames, and those not yet copied, read from
    its index header at each scrape (no query, no lock)."""

    def logged() -> float:
        found = wal_frames(database)
        return 0.0 if found is None else float(found[0])

    def pending() -> float:
        found = wal_frames(database)
        return 0.0 if found is None else float(found[0] - found[1])

    gauge.labels("logged").set_function(logged)
    gauge.labels("pending").set_function(pending)


def checkpoint_connection(database: str) -> sqlite3.Connection:
    """The checkpointer's own connection to `database`."""
    # No busy timeout: a PASSIVE checkpoint never waits for a lock.
    connection = sqlite3.connect(database, isolation_level=None, timeout=0)
    # FULL, whatever the build's default: the checkpoint must fsync the database file after
    # copying. When the writer's own checkpoint later finds every page already copied, it
    # copies (and syncs) nothing, and SQLite rewinds the WAL: pages this connection copied
    # without an fsync could then be lost to a power cut.
    connection.execute("PRAGMA synchronous=FULL")
    return connection


def database_file(url_database: str | None) -> str | None:
    """The file a SQLite URL's database names; None for an in-memory database."""
    if not url_database or url_database == ":memory:" or url_database.startswith("file:"):
        return None
    return os.path.abspath(url_database)

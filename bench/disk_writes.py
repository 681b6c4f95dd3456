"""Bytes a server writes to storage per callback: its process group's `write_bytes` from
`/proc/PID/io` (SQLite: the database, its WAL and the checkpoints), and PostgreSQL's WAL
bytes from `pg_stat_wal` (the server is another process group, so its own writes are not
the receiver's). Both are read before and after the measured load; unlike wall time, they
hardly move with the machine's load."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import psycopg

__all__ = ["group_write_bytes", "process_write_bytes", "wal_bytes"]


def process_write_bytes(pid: int | str = "self") -> int:
    """One process's `write_bytes` so far."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def group_write_bytes(pgid: int) -> int:
    """`write_bytes` summed over the live processes of process group `pgid` (a server started
    in a session of its own, with its workers)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError):
            # The fields after the command name, which is in parentheses and may hold spaces.
            fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
            if int(fields[2]) == pgid:
                total += process_write_bytes(entry)
    return total


def wal_bytes(admin_url: str) -> int:
    """The PostgreSQL server's WAL bytes so far (all databases)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT wal_bytes FROM pg_stat_wal").fetchone()
    assert row is not None
    return int(row[0])

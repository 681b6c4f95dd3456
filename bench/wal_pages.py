"""Where a callback's bytes go: WAL per b-tree (SQLite), per record type and relation (PostgreSQL).

The receiver in-process (bench.ingest_cpu's driver, one lifespan) on a fresh database:
`--prefill` callbacks, then `--count` measured ones, with random UUID ids.

SQLite: this process turns the receiver's checkpoints off (the background checkpointer and
the writer's autocheckpoint), and a connection of its own keeps the WAL when the app's
connections close, so every frame written stays in the WAL; the frames appended during the
measured callbacks are parsed (https://sqlite.org/fileformat2.html#walformat) and each page
mapped to its b-tree through `dbstat`, as the tree stands at the end.

PostgreSQL: `pg_waldump` between the insert LSNs read before and after the measured
callbacks, keeping the bench database's records (a block in it, or its transactions'
commits): other sessions share the server's WAL.

    python -m bench.wal_pages --prefill 4000 --count 4000
    python -m bench.wal_pages --database postgres --prefill 2000 --count 2000 --checkpoint
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sqlite3
import struct
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import psycopg

from bench.harness import receiver_env
from bench.ingest import fresh_database
from bench.ingest_cpu import _load_callbacks, _post
from bench.payloads import SignedCallback
from vlmhooks.cli_args import positive_int

WAL_HEADER, FRAME_HEADER = 32, 24
WAL_MAGIC = (0x377F0682, 0x377F0683)
PG_DB = "vlmhooks_wal_pages"  # not bench.ingest's, which other benches drop and remake
NOT_A_BTREE = "(not in a b-tree now: freelist)"
T = TypeVar("T")


@dataclass(frozen=True)
class Wal:
    page_size: int
    checkpoint_seq: int  # rises each time SQLite rewinds the WAL
    frames: list[tuple[int, int]]  # (page number, database size after a commit, else 0)
    stale_frames: int  # frames past the first whose salts are not the header's


def read_wal(path: Path) -> Wal:
    """The valid frames of the WAL file at `path`, in file order (the order they were written)."""
    data = path.read_bytes()
    magic, _version, page_size, seq, salt1, salt2 = struct.unpack_from(">6I", data)
    if magic not in WAL_MAGIC:
        raise ValueError(f"{path} is not a SQLite WAL (magic {magic:#x})")
    frames, size = [], FRAME_HEADER + page_size
    total = (len(data) - WAL_HEADER) // size
    for offset in range(WAL_HEADER, WAL_HEADER + total * size, size):
        page, commit, frame_salt1, frame_salt2 = struct.unpack_from(">4I", data, offset)
        if (frame_salt1, frame_salt2) != (salt1, salt2):
            break
        frames.append((page, commit))
    return Wal(page_size, seq, frames, total - len(frames))


def wal_frame_count(path: Path, page_size: int) -> int:
    """Frames in the WAL by its size (a stat: this process never opens a live WAL)."""
    size = path.stat().st_size if path.exists() else 0
    return max(0, size - WAL_HEADER) // (FRAME_HEADER + page_size)


def btree_pages(connection: sqlite3.Connection) -> dict[int, str]:
    """Page number -> the b-tree owning it ("index (of table)" for an index), via `dbstat`."""
    tables = dict(connection.execute("SELECT name, tbl_name FROM sqlite_schema").fetchall())
    owners = {}
    for page, name in connection.execute("SELECT pageno, name FROM dbstat"):
        table = tables.get(name, name)
        owners[page] = name if table == name else f"{name} (of {table})"
    return owners


def attribute(frames: Iterable[tuple[int, int]], owners: dict[int, str]) -> dict[str, list[int]]:
    """b-tree -> [frames written, distinct pages]; pages no b-tree holds: `NOT_A_BTREE`."""
    written: Counter[str] = Counter()
    pages: defaultdict[str, set[int]] = defaultdict(set)
    for page, _commit in frames:
        owner = owners.get(page, NOT_A_BTREE)
        written[owner] += 1
        pages[owner].add(page)
    return {owner: [count, len(pages[owner])] for owner, count in written.items()}


async def _drive_phases(
    app: Any, phases: list[list[SignedCallback]], concurrency: int, mark: Callable[[], T]
) -> tuple[list[int], list[T]]:
    """bench.ingest_cpu's `_drive`, with `mark()` taken after each phase, in one lifespan."""
    from receiver.state import SHUTDOWN_HOOK

    state: dict[str, Any] = {}
    statuses: list[int] = []
    marks: list[T] = []

    async def worker(queue: Iterator[SignedCallback]) -> None:
        for callback in queue:
            statuses.append(await _post(app, state, callback))

    async with app.router.lifespan_context(app) as lifespan_state:
        state.update(lifespan_state or {})
        for callbacks in phases:
            queue = iter(callbacks)
            await asyncio.gather(*(worker(queue) for _ in range(concurrency)))
            marks.append(mark())
        state[SHUTDOWN_HOOK]()
    return statuses, marks


def drive(args: argparse.Namespace, url: str, mark: Callable[[], T]) -> list[T]:
    """The prefill and the measured callbacks through the receiver; the marks after each."""
    from receiver.app import create_app
    from vlmhooks.settings import load_settings

    os.environ.update(receiver_env(url))
    callbacks = _load_callbacks(args.prefill + args.count)
    phases = [callbacks[: args.prefill], callbacks[args.prefill :]]
    app = create_app(load_settings())
    statuses, marks = asyncio.run(_drive_phases(app, phases, args.concurrency, mark))
    bad = sum(status != 200 for status in statuses)
    print(f"{len(statuses)} callbacks ({args.prefill} prefill, {args.count} measured), "
          f"{bad} not 200, concurrency {args.concurrency}\n")  # fmt: skip
    return marks


def run_sqlite(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_database("sqlite", Path(tmp))
        database = Path(tmp) / "bench.db"
        wal_path = Path(f"{database}-wal")
        # Open and reading, this connection holds a shared lock on the file, so the app's
        # connections closing never checkpoint nor delete the WAL; it writes nothing.
        keeper = sqlite3.connect(database, isolation_level=None)
        keeper.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        page_size = int(keeper.execute("PRAGMA page_size").fetchone()[0])
        with contextlib.ExitStack() as patches:
            patches.enter_context(mock.patch("receiver.app.wal_checkpointer", lambda *_: None))
            patches.enter_context(
                mock.patch("receiver.server.runtime.WRITER_AUTOCHECKPOINT_PAGES", 0)  # off
            )
            start, end = drive(args, url, lambda: wal_frame_count(wal_path, page_size))
        wal = read_wal(wal_path)
        if wal.checkpoint_seq or wal.stale_frames or len(wal.frames) < end:
            raise SystemExit(f"the WAL was rewound during the run: {wal}")
        measured = wal.frames[start:end]
        usage = attribute(measured, btree_pages(keeper))
        keeper.close()
    commits = sum(1 for _page, commit in measured if commit)
    frame_kib, n = (FRAME_HEADER + page_size) / 1024, args.count
    print(f"{len(measured)} WAL frames for {n} callbacks, page size {page_size}; {commits} "
          f"commits, {n / max(commits, 1):.1f} callbacks per commit\n")  # fmt: skip
    print("| b-tree | WAL KiB / callback | share | pages touched / callback |")
    print("| --- | ---: | ---: | ---: |")
    rows = sorted(usage.items(), key=lambda item: -item[1][0])
    rows.append(("total", [len(measured), len({page for page, _ in measured})]))
    for owner, (frames, pages) in rows:
        print(f"| {owner} | {frames * frame_kib / n:.2f} | {frames / len(measured):.1%} "
              f"| {pages / n:.3f} |")  # fmt: skip
    print("\nKiB count each frame's 24-byte header; pages touched are what one checkpoint after "
          "the run would copy.")  # fmt: skip


RECORD = re.compile(r"rmgr: (\S+)\s+len \(rec/tot\):\s*(\d+)/\s*(\d+), tx:\s*(\d+),.*?desc: (\S+)")
FIRST_BLOCK = re.compile(r"blkref #0: rel \d+/(\d+)/(\d+)")
RELATIONS = """SELECT pg_relation_filenode(c.oid), c.relname || COALESCE(' (TOAST of '
    || (SELECT o.relname FROM pg_class o WHERE o.reltoastrelid IN (c.oid, i.indrelid)) || ')', '')
    FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid
    WHERE pg_relation_filenode(c.oid) IS NOT NULL"""


@dataclass(frozen=True)
class PgRecord:
    kind: str  # as `pg_waldump --stats=record` names it: Heap/INSERT, Btree/INSERT_LEAF, ...
    size: int  # the whole record, its full-page images included
    fpi: int
    xid: int
    block: tuple[int, int] | None  # its first block's (database oid, relfilenode)


def pg_records(dump: str, database: int) -> tuple[list[PgRecord], int]:
    """The records of `pg_waldump`'s output that are the database's (a block in it, or the
    transaction of one that has: commits), and the bytes of all the others."""
    records = []
    for line in dump.splitlines():
        if found := RECORD.search(line):
            rmgr, rec, tot, xid, desc = found.groups()
            block = FIRST_BLOCK.search(line)
            first = (int(block[1]), int(block[2])) if block else None
            records.append(
                PgRecord(f"{rmgr}/{desc}", int(tot), int(tot) - int(rec), int(xid), first)
            )
    xids = {r.xid for r in records if r.block and r.block[0] == database and r.xid}
    mine = [r for r in records if (r.block and r.block[0] == database) or r.xid in xids]
    return mine, sum(r.size for r in records) - sum(r.size for r in mine)


def run_postgres(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_database("postgres", Path(tmp), pg_name=PG_DB)
    marks: list[bool] = []
    with psycopg.connect(url, autocommit=True) as conn:

        def one(sql: str) -> Any:
            row = conn.execute(sql).fetchone()
            assert row is not None
            return row[0]

        # A temporary slot, reserved now, keeps every WAL segment from here until this
        # session ends: another session's checkpoint would otherwise recycle the run's
        # segments before pg_waldump reads them.
        one("SELECT pg_create_physical_replication_slot('vlmhooks_wal_pages_'"
            " || pg_backend_pid(), true, true)")  # fmt: skip

        def mark() -> tuple[str, int]:
            if args.checkpoint and not marks:
                conn.execute("CHECKPOINT")
            marks.append(True)
            checkpoints = "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
            return str(one("SELECT pg_current_wal_insert_lsn()")), int(one(checkpoints))

        (start, before), (end, after) = drive(args, url, mark)
        while one(f"SELECT pg_current_wal_flush_lsn() < '{end}'::pg_lsn"):
            time.sleep(0.05)  # pg_waldump reads what is on disk
        major = int(one("SHOW server_version_num")) // 10000
        waldump = [f"/usr/lib/postgresql/{major}/bin/pg_waldump", "--start", start, "--end", end,
                   "--path", f"{one('SHOW data_directory')}/pg_wal"]  # fmt: skip
        stats = subprocess.run([*waldump, "--stats=record"], capture_output=True, text=True)
        dump = subprocess.run(waldump, capture_output=True, text=True, check=True).stdout
        relations: dict[int, str] = dict(conn.execute(RELATIONS).fetchall())
        database = int(one("SELECT oid FROM pg_database WHERE datname = current_database()"))
    records, others = pg_records(dump, database)
    n, kib = args.count, 1024
    total = next((line for line in stats.stdout.splitlines() if line.startswith("Total")), "")
    print(f"WAL {start} .. {end}, {after - before} checkpoint(s) in it (after one, the next "
          f"change of each page writes a full-page image). `--stats=record` over all sessions: "
          f"{' '.join(total.split())}; other sessions' records, left out below: "
          f"{others / n / kib:.2f} KiB per callback.\n")  # fmt: skip
    by_kind: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    by_relation: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in records:
        owner = relations.get(r.block[1], f"relfilenode {r.block[1]}") if r.block else None
        for table, key in ((by_kind, r.kind), (by_relation, owner or "(no block: commits)")):
            table[key][0] += 1
            table[key][1] += r.size - r.fpi
            table[key][2] += r.fpi
    for title, table in (("record type", by_kind), ("relation (its first block)", by_relation)):
        rows = sorted(table.items(), key=lambda kv: -sum(kv[1][1:]))
        rows.append(("total", [sum(values[i] for values in table.values()) for i in range(3)]))
        print(f"| {title} | records / callback | record KiB / callback | FPI KiB / callback "
              "| total KiB / callback |\n| --- | ---: | ---: | ---: | ---: |")  # fmt: skip
        for key, (count, rec, fpi) in rows:
            print(f"| {key} | {count / n:.2f} | {rec / n / kib:.2f} | {fpi / n / kib:.2f} "
                  f"| {(rec + fpi) / n / kib:.2f} |")  # fmt: skip
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--prefill", type=int, default=4000)
    parser.add_argument("--count", type=positive_int, default=4000)
    parser.add_argument("--concurrency", type=positive_int, default=32)
    parser.add_argument(
        "--checkpoint",
        action="store_true",
        help="PostgreSQL: CHECKPOINT before the measured callbacks, so the first change of "
        "each page writes a full-page image, as after every checkpoint of a long run",
    )
    args = parser.parse_args()
    (run_postgres if args.database == "postgres" else run_sqlite)(args)


if __name__ == "__main__":
    main()

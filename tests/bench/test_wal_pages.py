"""bench/wal_pages.py's SQLite half: WAL frames parsed and attributed to the b-trees written."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.wal_pages import NOT_A_BTREE, attribute, btree_pages, read_wal, wal_frame_count

COMMITS = 20


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, Path]]:
    """Two tables with an index each, both holding rows; the WAL emptied, checkpoints off."""
    path = tmp_path / "two.db"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    for table in ("written", "untouched"):
        connection.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, key TEXT, body TEXT)")
        connection.execute(f"CREATE INDEX ix_{table}_key ON {table} (key)")
        connection.executemany(
            f"INSERT INTO {table} (key, body) VALUES (?, ?)",  # noqa: S608 (our two names)
            ((f"{i:08d}", "x" * 500) for i in range(200)),
        )
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    yield connection, Path(f"{path}-wal")
    connection.close()


def test_frames_go_to_the_written_table_and_its_index_only(
    database: tuple[sqlite3.Connection, Path],
) -> None:
    connection, wal_path = database
    page_size = int(connection.execute("PRAGMA page_size").fetchone()[0])
    assert wal_frame_count(wal_path, page_size) == 0
    for commit in range(COMMITS):
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO written (key, body) VALUES (?, ?)",
            ((f"k{commit:03d}-{i:03d}", "y" * 500) for i in range(10)),
        )
        connection.execute("COMMIT")

    wal = read_wal(wal_path)
    assert (wal.page_size, wal.stale_frames) == (page_size, 0)
    assert len(wal.frames) == wal_frame_count(wal_path, page_size) > 0
    assert sum(1 for _page, commit in wal.frames if commit) == COMMITS
    usage = attribute(wal.frames, btree_pages(connection))
    # The file grew, so page 1 (the header's page count; the schema's b-tree) is written too.
    assert set(usage) == {"written", "ix_written_key (of written)", "sqlite_schema"}
    assert usage["written"][0] > usage["ix_written_key (of written)"][0] > 0
    assert sum(frames for frames, _pages in usage.values()) == len(wal.frames)
    assert NOT_A_BTREE not in usage


def test_frames_after_a_mark_are_the_later_writes_only(
    database: tuple[sqlite3.Connection, Path],
) -> None:
    connection, wal_path = database
    page_size = int(connection.execute("PRAGMA page_size").fetchone()[0])
    connection.execute("INSERT INTO untouched (key, body) VALUES ('a', 'b')")
    mark = wal_frame_count(wal_path, page_size)
    connection.execute("UPDATE written SET body = 'z' WHERE id = 1")

    frames = read_wal(wal_path).frames
    before = attribute(frames[:mark], btree_pages(connection))
    after = attribute(frames[mark:], btree_pages(connection))
    # (page 1 too if the insert took a new page)
    assert set(before) - {"sqlite_schema"} == {"untouched", "ix_untouched_key (of untouched)"}
    assert set(after) == {"written"}  # one row's body: no index entry changes
    assert after["written"] == [1, 1]  # one leaf page, in one commit frame
    assert frames[-1][1] > 0


def test_a_file_that_is_no_wal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "not-a-wal"
    path.write_bytes(b"\0" * 64)
    with pytest.raises(ValueError, match="not a SQLite WAL"):
        read_wal(path)

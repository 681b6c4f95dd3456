from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from vlmhooks.errors import ConfigError
from vlmhooks.store.db import dumps_json, dumps_json_utf8, make_engine, normalize_database_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg2://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_normalize_database_url(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected


@pytest.mark.parametrize("url", ["", "mysql://root@localhost/x", "not a url"])
def test_bad_database_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        normalize_database_url(url)


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


@pytest.mark.postgres
def test_postgres_engine_uses_psycopg3(postgres_url: str) -> None:
    engine = make_engine(postgres_url.replace("postgresql://", "postgres://"))
    assert engine.dialect.driver == "psycopg"
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT 1").scalar() == 1
    engine.dispose()


def test_sqlite_begin_busy_is_sqlalchemys_operational_error(tmp_path: Path) -> None:
    """The `begin` listener sends BEGIN IMMEDIATE to the driver itself; a lock held
    elsewhere still surfaces as SQLAlchemy's OperationalError carrying SQLITE_BUSY, which
    the group committer's lock-free attempt relies on."""
    path = tmp_path / "busy.db"
    engine = make_engine(f"sqlite:///{path}", immediate_writes=True)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("BEGIN IMMEDIATE")
    try:
        with engine.connect() as connection:
            driver = connection.connection.driver_connection
            assert driver is not None
            driver.execute("PRAGMA busy_timeout=0")
            with pytest.raises(sa.exc.OperationalError) as raised:
                connection.begin()
            assert getattr(raised.value.orig, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
            other.execute("COMMIT")
            with connection.begin():  # and once the lock is free, the same connection writes
                connection.exec_driver_sql("CREATE TABLE t (x)")
    finally:
        other.close()
        engine.dispose()


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, None, "ß€\u2028"], "b": {"c": True}},
        {1: "one", "nested": {2.5: "x", None: "n"}},
        None,
        "text",
    ],
)
def test_json_columns_encode_like_the_stdlib(value: Any) -> None:
    """orjson without its non-string-keys option on the fast path, with it as the fallback:
    the same text as the stdlib encoder either way (keys that are not strings become
    strings)."""
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert dumps_json_utf8(value) == expected.encode()
    assert dumps_json(value) == expected

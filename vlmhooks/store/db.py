"""Engines for SQLite (the embedded default) and PostgreSQL (the scale-out path)."""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from vlmhooks.errors import ConfigError
from vlmhooks.settings import DEFAULT_DB_TIMEOUT_SECONDS

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "dumps_json",
    "dumps_json_utf8",
    "libpq_timeouts",
    "make_engine",
    "normalize_database_url",
]

SQLITE_BUSY_TIMEOUT_MS = 30_000
# A statement's parameters are callback bodies, headers and raw deliveries: an error message
# (logged, or shown by a CLI) must name the statement, never repeat them.
HIDE_PARAMETERS = True


def normalize_database_url(url: str) -> str:
    """Accept Heroku's `postgres://` and plain `postgresql://`, and pin the psycopg 3 driver."""
    url = url.strip()
    if not url:
        raise ConfigError("DATABASE_URL is empty")
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
            break
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:  # ValueError: e.g. a port like ":1"
        raise ConfigError(f"DATABASE_URL is not a database URL: {exc}") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"DATABASE_URL uses {parsed.get_backend_name()!r}; "
            "only sqlite and postgresql are supported"
        )
    return url


def sqlite_file(url_database: str | None) -> str | None:
    """The file a SQLite URL's database names, absolute; None for an in-memory database
    (and for `file:` URIs, whose options only SQLite should read)."""
    if not url_database or url_database == ":memory:" or url_database.startswith("file:"):
        return None
    return os.path.abspath(url_database)


def dumps_json(value: Any) -> str:
    # orjson instead of the stdlib: JSON columns are written on every callback, and the
    # stdlib encoder was the largest single cost of a group-commit batch.
    return dumps_json_utf8(value).decode()


def dumps_json_utf8(value: Any) -> bytes:
    """`dumps_json` as UTF-8 bytes. Keys that are not strings are written as strings (the
    stdlib's behaviour); only values holding such a key pay for the option, which costs
    orjson more than half again as much time on every dict (JSON parsed from a body
    never has one)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    # WAL lets readers run during the single writer's commit; FULL makes each commit
    # durable across power loss, which is what a 2xx acknowledgement promises.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(statement: str) -> Callable[[Connection], None]:
    """The `begin` listener: `statement` straight to the driver. Through `exec_driver_sql`
    it cost the group committer's batch more than its own reads (SQLAlchemy's execution
    context, for a statement with no parameters and no result)."""

    def begin(connection: Connection) -> None:
        driver = connection.connection.driver_connection
        assert driver is not None, "a connection beginning a transaction has its driver"
        try:
            driver.execute(statement)
        except sqlite3.Error as exc:
            # As exec_driver_sql raised it (OperationalError for SQLITE_BUSY, ...), so
            # callers keep handling one family of errors.
            raise sa.exc.DBAPIError.instance(
                statement, (), exc, sqlite3.Error, dialect=connection.dialect
            ) from exc

    return begin


def libpq_timeouts(timeout: float) -> dict[str, int]:
    """libpq's socket options for a database that must answer within `timeout` seconds.

    A statement or COMMIT sent into a partition waits on the kernel's retransmissions
    (about 15 minutes) and an idle connection never learns its peer is gone: PostgreSQL's
    own `statement_timeout` runs on the server, which the request never reaches.
    `tcp_user_timeout` fails a socket whose sent data stays unacknowledged for half the
    budget, and keepalives probe a connection that waits in silence, so a dead peer fails
    the call in seconds and the pool opens a fresh connection. A healthy peer acknowledges
    at once, however long its query runs.
    """
    half = timeout / 2
    return {
        "connect_timeout": max(2, math.ceil(half)),  # libpq's minimum is 2 s
        "keepalives": 1,
        "keepalives_idle": max(1, math.floor(timeout / 4)),
        "keepalives_interval": max(1, math.floor(timeout / 8)),
        "keepalives_count": 3,
        "tcp_user_timeout": max(1, int(half * 1000)),
    }


def make_engine(
    url: str,
    *,
    pool_size: int = 8,
    immediate_writes: bool = False,
    echo: bool = False,
    pooler: str = "none",
    wal_autocheckpoint: int | None = None,
    timeout: float = DEFAULT_DB_TIMEOUT_SECONDS,
) -> Engine:
    """Build the engine for `url`; call it from a lifespan or CLI, never at import time.

    `immediate_writes` (SQLite only) opens every transaction with BEGIN IMMEDIATE: use it
    for an engine that only writes, so writers in several processes queue on the busy
    timeout instead of failing when a read lock cannot be upgraded.

    `pooler="transaction"` (PostgreSQL behind PgBouncer or a provider's pooler in
    transaction mode): each transaction may run on another server connection, so psycopg
    must not prepare statements server-side (a later transaction would name a statement
    that backend never saw).

    `wal_autocheckpoint` (SQLite only): the WAL size, in pages, past which a COMMIT on these
    connections checkpoints (SQLite's default is 1,000); see receiver/writer/wal_checkpoints.py.

    `timeout` (VLMHOOKS_DB_TIMEOUT): the longest a pool checkout waits, and on PostgreSQL
    what `libpq_timeouts` derives its socket options from; options given in the URL win.
    """
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            echo=echo,
            hide_parameters=HIDE_PARAMETERS,
            json_serializer=dumps_json,
            json_deserializer=orjson.loads,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=timeout,
        )
        sa.event.listen(engine, "connect", _configure_sqlite)
        if wal_autocheckpoint is not None:
            pragma = f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}"
            sa.event.listen(engine, "connect", lambda dbapi, _record: dbapi.execute(pragma))
        # pysqlite's implicit BEGIN is off (isolation_level=None above); we emit our own,
        # as SQLAlchemy's pysqlite notes recommend, so transactions mean what they say.
        begin = "BEGIN IMMEDIATE" if immediate_writes else "BEGIN"
        sa.event.listen(engine, "begin", _sqlite_begin(begin))
        return engine
    given = make_url(url).query
    connect_args: dict[str, Any] = {
        name: value for name, value in libpq_timeouts(timeout).items() if name not in given
    }
    if pooler == "transaction":
        connect_args["prepare_threshold"] = None
    return sa.create_engine(
        url,
        echo=echo,
        hide_parameters=HIDE_PARAMETERS,
        connect_args=connect_args,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=timeout,
        pool_pre_ping=True,
        json_serializer=dumps_json,
        json_deserializer=orjson.loads,
    )

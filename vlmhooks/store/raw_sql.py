"""The write path's multi-row statements rendered once per dialect and fed plain tuples.

SQLAlchemy Core spent more CPU per row binding parameters (type processors, compiled-cache
lookups, insertmanyvalues batching) than the database spent storing it; these statements go
to the DB-API cursor, inside the caller's SQLAlchemy transaction, and convert values
exactly as the column types would (so rows read back identically).

On PostgreSQL they are written with the server's own `$1, $2, ...` placeholders and run on
psycopg's `RawCursor`, which sends them as they are. Its default cursor parses `%s` out of
every statement, and caches the result only for statements under 4 KiB and 50 parameters:
a batch's multi-row upsert is neither, and parsing it held the writer thread's GIL on
every batch (bench/README.md, "Issue 13, sixth pass").
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vlmhooks.store.db import dumps_json, dumps_json_utf8

__all__ = [
    "Prepared",
    "RawInsert",
    "RawUpdate",
    "as_datetime",
    "as_json",
    "placeholders",
    "run_all",
    "run_prepared",
]

Convert = Callable[[Any], Any]


def _sqlite_datetime(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DATETIME storage format (its bind processor), UTC values.
    return None if value is None else _sqlite_datetime_text(value)


@functools.lru_cache(maxsize=1024)
def _sqlite_datetime_text(value: datetime) -> str:
    # Cached: one write stores its receive time four times (prediction twice, event,
    # delivery), and a batch's writes share instants. isoformat is several times cheaper
    # than strftime; the slice drops the "+00:00". In UTC first, so that equal instants
    # (equal keys here) always give equal text.
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def _sqlite_bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _json(value: Any) -> str:
    # As sa.JSON binds it: None is the JSON `null`, not SQL NULL (none_as_null=False).
    return dumps_json(value)


def _identity(value: Any) -> Any:
    return value


def as_datetime(value: datetime | str) -> datetime:
    """A timestamp column read through the raw cursor (SQLite returns its stored text)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def as_json(value: Any) -> Any:
    """A JSON column read through the raw cursor (SQLite returns its text, psycopg a value)."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


@dataclass(frozen=True, slots=True)
class Prepared:
    """A statement and its DB-API parameters, rendered ahead of running it: one execute, or
    an executemany when `many`."""

    sql: str
    params: tuple[Any, ...] | list[tuple[Any, ...]]
    many: bool = False


def run_prepared(connection: Connection, prepared: Prepared) -> list[tuple[Any, ...]]:
    """Run `prepared` on the DB-API cursor, inside `connection`'s transaction; the rows it
    returns. Nothing in SQLAlchemy runs per statement, so a thread that only does this
    spends its time in the driver, without the GIL."""
    driver_error: type[Exception] = connection.dialect.loaded_dbapi.Error
    cursor = _cursor(connection)
    try:
        if prepared.many:
            cursor.executemany(prepared.sql, prepared.params)
            return []
        cursor.execute(prepared.sql, prepared.params)
        return list(cursor.fetchall()) if cursor.description is not None else []
    except driver_error as exc:
        raise _wrapped(connection, prepared.sql, prepared.params, exc) from exc
    finally:
        cursor.close()


def run_all(connection: Connection, statements: Sequence[Prepared]) -> list[list[tuple[Any, ...]]]:
    """Run `statements` in order; the rows each returns. On PostgreSQL they go out in one
    pipeline (one round trip for all, instead of one each); nothing is read between them,
    so none may depend on another's result in Python."""
    if connection.dialect.name != "postgresql" or len(statements) < 2:
        return [run_prepared(connection, prepared) for prepared in statements]
    driver_error: type[Exception] = connection.dialect.loaded_dbapi.Error
    driver = connection.connection.driver_connection
    assert driver is not None, "a connection inside a transaction has its driver connection"
    cursors = []
    try:
        with driver.pipeline():
            for prepared in statements:
                cursor = _cursor(connection)
                cursors.append(cursor)
                if prepared.many:
                    cursor.executemany(prepared.sql, prepared.params)
                else:
                    cursor.execute(prepared.sql, prepared.params)
        # The pipeline synced on leaving the block: every result is here.
        return [
            list(cursor.fetchall()) if cursor.description is not None else [] for cursor in cursors
        ]
    except driver_error as exc:
        # A pipeline reports its error when it syncs, not at the statement that failed:
        # name the batch, not a statement that may be innocent (the driver's own message
        # says what failed).
        summary = f"(a pipeline of {len(statements)} statements)"
        raise _wrapped(connection, summary, (), exc) from exc
    finally:
        for cursor in cursors:
            cursor.close()


def _wrapped(
    connection: Connection, sql: str, params: Any, error: Exception
) -> sa.exc.StatementError:
    # As SQLAlchemy would raise it (OperationalError, IntegrityError, ...), so callers keep
    # handling one family of errors; parameters hidden as the engine hides them (they hold
    # callback bodies, which must not reach the logs).
    return sa.exc.DBAPIError.instance(
        sql,
        params,
        error,
        connection.dialect.loaded_dbapi.Error,
        hide_parameters=connection.engine.hide_parameters,
        dialect=connection.dialect,
    )


def _cursor(connection: Connection) -> Any:
    if connection.dialect.name != "postgresql":
        return connection.connection.cursor()
    from psycopg import RawCursor  # only where psycopg is the driver (serverless imports)

    driver = connection.connection.driver_connection
    assert driver is not None, "a connection inside a transaction has its driver connection"
    return RawCursor(driver)


def placeholders(dialect_name: str, count: int, first: int = 1) -> str:
    """`?, ?, ?` (SQLite) or `$first, ...` (PostgreSQL, numbered from `first`); `NULL` for
    none, which matches nothing in an `IN (...)` on both."""
    if count == 0:
        return "NULL"
    if dialect_name == "postgresql":
        return ", ".join(f"${number}" for number in range(first, first + count))
    return ", ".join(["?"] * count)


def _numbered(sql: str, dialect_name: str) -> str:
    """`sql` with each `{mark}` made a placeholder: `?`, or `$1`, `$2`, ... in order."""
    parts = sql.split("{mark}")
    if dialect_name != "postgresql":
        return "?".join(parts)
    return parts[0] + "".join(f"${number}{part}" for number, part in enumerate(parts[1:], 1))


class RawUpdate:
    """An `UPDATE` run once per parameter row (executemany), values converted as the
    columns' types would; `sql` uses `{mark}` for each placeholder."""

    def __init__(
        self, sql: str, names: Sequence[str], datetimes: Sequence[str], dialect_name: str
    ) -> None:
        self.sql = _numbered(sql, dialect_name)
        self._values = operator.itemgetter(*names)
        convert = dialect_name != "postgresql"
        self._conversions = tuple(
            (index, _sqlite_datetime)
            for index, name in enumerate(names)
            if convert and name in datetimes
        )

    def prepare_many(self, rows: Sequence[dict[str, Any]]) -> Prepared:
        params: list[tuple[Any, ...]] = []
        for row in rows:
            values = list(self._values(row))
            for index, convert in self._conversions:
                values[index] = convert(values[index])
            params.append(tuple(values))
        return Prepared(self.sql, params, many=True)


class RawInsert:
    """`INSERT INTO table (columns) VALUES (...), (...) [suffix] [RETURNING returning]` for
    one dialect."""

    def __init__(
        self,
        table: sa.Table,
        columns: Sequence[str],
        dialect_name: str,
        suffix: str = "",
        returning: Sequence[str] = (),
        derived: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        """`derived` maps a column to (the row's field it is computed from, SQL around
        `{mark}`): the column's value is that SQL, bound to the field's value."""
        postgresql = dialect_name == "postgresql"
        mark = "{mark}"
        derived = derived or {}
        self.columns = tuple(columns)
        placeholders: list[str] = []
        converters: list[Convert] = []
        for name in self.columns:
            column_type = table.c[name].type
            if name in derived:
                placeholders.append(derived[name][1])
                converters.append(_identity)
            elif isinstance(column_type, sa.JSON):
                # SQLite gets orjson's UTF-8 as it comes, cast to TEXT (as SQLAlchemy's JSON
                # type stores it) by the statement: no str built only to be encoded back.
                placeholders.append(f"CAST({mark} AS {'JSONB' if postgresql else 'TEXT'})")
                converters.append(_json if postgresql else dumps_json_utf8)
            elif isinstance(column_type, sa.DateTime) and not postgresql:
                placeholders.append(mark)
                converters.append(_sqlite_datetime)
            elif isinstance(column_type, sa.Boolean) and not postgresql:
                placeholders.append(mark)
                converters.append(_sqlite_bool)
            else:
                placeholders.append(mark)
                converters.append(_identity)
        # A row's values in column order with one C call; only the columns that need it
        # are converted afterwards.
        self._values = operator.itemgetter(
            *(derived[name][0] if name in derived else name for name in self.columns)
        )
        self._conversions = tuple(
            (index, convert) for index, convert in enumerate(converters) if convert is not _identity
        )
        # Identifiers from our own table metadata; values only ever travel as parameters.
        self._head = f"INSERT INTO {table.name} ({', '.join(self.columns)}) VALUES "  # noqa: S608
        self._group = f"({', '.join(placeholders)})"
        if returning:
            suffix = f"{suffix} RETURNING {', '.join(returning)}".lstrip()
        self._suffix = f" {suffix}" if suffix else ""
        self._dialect_name = dialect_name
        self._statements: dict[int, str] = {}  # by row count: PostgreSQL numbers every mark

    def prepare(self, rows: Sequence[dict[str, Any]]) -> Prepared:
        """One statement for all `rows` (dicts keyed by column name)."""
        params: list[Any] = []
        for row in rows:
            values = list(self._values(row))
            for index, convert in self._conversions:
                values[index] = convert(values[index])
            params += values
        return Prepared(self._statement(len(rows)), tuple(params))

    def _statement(self, count: int) -> str:
        statement = self._statements.get(count)
        if statement is None:
            groups = ", ".join([self._group] * count)
            statement = _numbered(self._head + groups + self._suffix, self._dialect_name)
            if len(self._statements) < _MAX_CACHED_SHAPES:
                self._statements[count] = statement
        return statement


# Batches hold at most a few hundred writes, so a few hundred shapes per statement.
_MAX_CACHED_SHAPES = 1024

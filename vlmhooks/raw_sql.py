"""The write path's multi-row statements rendered once per dialect and fed plain tuples.

SQLAlchemy Core spent more CPU per row binding parameters (type processors, compiled-cache
lookups, insertmanyvalues batching) than the database spent storing it; these statements go
to the DB-API cursor through `exec_driver_sql`, inside the caller's SQLAlchemy transaction,
and convert values exactly as the column types would (so rows read back identically).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vlmhooks.db import dumps_json

__all__ = ["RawInsert", "as_datetime"]

Convert = Callable[[Any], Any]


def _sqlite_datetime(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DATETIME storage format (its bind processor), UTC values.
    if value is None:
        return None
    # isoformat is several times cheaper than strftime; the slice drops the "+00:00".
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
    return value


class RawInsert:
    """`INSERT INTO table (columns) VALUES (...), (...) [suffix]` for one dialect."""

    def __init__(
        self, table: sa.Table, columns: Sequence[str], dialect_name: str, suffix: str = ""
    ) -> None:
        postgresql = dialect_name == "postgresql"
        mark = "%s" if postgresql else "?"
        self.columns = tuple(columns)
        placeholders: list[str] = []
        converters: list[Convert] = []
        for name in self.columns:
            column_type = table.c[name].type
            if isinstance(column_type, sa.JSON):
                placeholders.append(f"CAST({mark} AS JSONB)" if postgresql else mark)
                converters.append(_json)
            elif isinstance(column_type, sa.DateTime) and not postgresql:
                placeholders.append(mark)
                converters.append(_sqlite_datetime)
            elif isinstance(column_type, sa.Boolean) and not postgresql:
                placeholders.append(mark)
                converters.append(_sqlite_bool)
            else:
                placeholders.append(mark)
                converters.append(_identity)
        self._converters = tuple(zip(self.columns, converters, strict=True))
        # Identifiers from our own table metadata; values only ever travel as parameters.
        self._head = f"INSERT INTO {table.name} ({', '.join(self.columns)}) VALUES "  # noqa: S608
        self._group = f"({', '.join(placeholders)})"
        self._suffix = f" {suffix}" if suffix else ""

    def execute(
        self, connection: Connection, rows: Sequence[dict[str, Any]]
    ) -> list[tuple[Any, ...]]:
        """One statement for all `rows` (dicts keyed by column name); the RETURNING rows."""
        params = [convert(row[name]) for row in rows for name, convert in self._converters]
        sql = self._head + ", ".join([self._group] * len(rows)) + self._suffix
        result = connection.exec_driver_sql(sql, tuple(params))
        return [tuple(row) for row in result] if result.returns_rows else []

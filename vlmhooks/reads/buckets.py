"""Time buckets and JSON sums in SQL that read the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

__all__ = ["Unit", "bucket_start", "json_integer", "sum_integer", "utc_bucket"]

Unit = Literal["day", "minute"]

# SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text, and every time we
# store is UTC (schemas.contract.as_utc), so a prefix of the text is the UTC bucket.
_SQLITE_PREFIX = {"day": 10, "minute": 16}
_POSTGRES_FORMAT = {"day": "YYYY-MM-DD", "minute": "YYYY-MM-DD HH24:MI"}
_PYTHON_FORMAT = {"day": "%Y-%m-%d", "minute": "%Y-%m-%d %H:%M"}


def utc_bucket(column: Any, dialect_name: str, unit: Unit) -> ColumnElement[str]:
    """The UTC day or minute of a timestamp column as text, identical on both databases."""
    if dialect_name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), _POSTGRES_FORMAT[unit])
    return sa.func.substr(column, 1, _SQLITE_PREFIX[unit])


def bucket_start(value: datetime, unit: Unit) -> str:
    """The bucket text `utc_bucket` gives for a UTC datetime, to line Python up with SQL."""
    return value.strftime(_PYTHON_FORMAT[unit])


def json_integer(column: Any, key: str) -> ColumnElement[int]:
    """`column[key]` as a 64-bit integer (NULL when absent); INTEGER would overflow at 2**31."""
    return sa.cast(column[key].as_string(), sa.BigInteger)


def sum_integer(expression: ColumnElement[int], dialect_name: str) -> ColumnElement[Any]:
    """SUM that cannot fail: SQLite's sum() raises on 64-bit overflow, its total() does not."""
    if dialect_name == "sqlite":
        return sa.func.total(expression)
    return sa.func.coalesce(sa.func.sum(expression), 0)

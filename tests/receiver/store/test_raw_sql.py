"""The write path's raw statements: one placeholder per parameter, in each dialect's form
(PostgreSQL's numbered `$n`, run on psycopg's RawCursor, which sends them unparsed)."""

from __future__ import annotations

import re

import pytest

from vlmhooks.store.raw_sql import Prepared, placeholders
from vlmhooks.store.statements import statements_for


def _rows(columns: tuple[str, ...], count: int) -> list[dict[str, object]]:
    return [{column: None for column in columns} for _ in range(count)]


def _shapes(dialect: str) -> list[Prepared]:
    statements = statements_for(dialect)
    shapes = [
        statements.batch_context(["s1", "s2"], ["p1", "p2", "p3"]),
        statements.batch_context([], ["p1"]),
        statements.raw_claim_prediction.prepare_many([{"claimant_id": "s", "claimed_id": "p"}]),
    ]
    for insert in (
        statements.raw_upsert_prediction,
        statements.raw_insert_event,
        statements.raw_insert_delivery,
    ):
        shapes += [insert.prepare(_rows(insert.columns, count)) for count in (1, 7, 128)]
    return shapes


def test_postgresql_statements_number_one_placeholder_per_parameter() -> None:
    for prepared in _shapes("postgresql"):
        params = prepared.params[0] if prepared.many else prepared.params
        assert isinstance(params, tuple)
        assert "%s" not in prepared.sql
        numbers = [int(n) for n in re.findall(r"\$(\d+)", prepared.sql)]
        assert sorted(set(numbers)) == list(range(1, len(params) + 1)), prepared.sql[:80]


@pytest.mark.parametrize("count", [1, 3, 60])
def test_placeholders_number_from_where_they_start(count: int) -> None:
    marks = placeholders("postgresql", count, 5).split(", ")
    assert marks == [f"${n}" for n in range(5, 5 + count)]
    assert placeholders("sqlite", count, 5) == ", ".join(["?"] * count)
    assert placeholders("postgresql", 0) == placeholders("sqlite", 0) == "NULL"


def test_sqlite_statements_keep_one_question_mark_per_parameter() -> None:
    for prepared in _shapes("sqlite"):
        params = prepared.params[0] if prepared.many else prepared.params
        assert "$" not in prepared.sql
        assert prepared.sql.count("?") == len(params)


def test_a_statement_shape_is_rendered_once_per_row_count() -> None:
    insert = statements_for("postgresql").raw_upsert_prediction
    first = insert.prepare(_rows(insert.columns, 7)).sql
    again = insert.prepare(_rows(insert.columns, 7)).sql
    assert first is again  # cached, not rebuilt

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import schemas.tables  # noqa: F401
from vlmhooks.store import migrate
from vlmhooks.store.db import make_engine


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("empty_postgres_url"))
    return f"sqlite:///{tmp_path / 'empty.db'}"


def _drift(engine: sa.engine.Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def test_migrated_schema_matches_models(empty_url: str) -> None:
    engine = make_engine(empty_url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.is_at_head(engine)
    assert _drift(engine) == []
    engine.dispose()


def test_migrations_go_down_and_up_again(empty_url: str) -> None:
    engine = make_engine(empty_url)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    tables = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set()
    migrate.upgrade(engine)
    assert migrate.is_at_head(engine)
    assert _drift(engine) == []
    engine.dispose()


def test_drift_is_detected(empty_url: str) -> None:
    """The no-drift check can fail: an extra column in the database shows up."""
    engine = make_engine(empty_url)
    migrate.upgrade(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE prediction ADD COLUMN surprise INTEGER")
    assert _drift(engine) != []
    engine.dispose()

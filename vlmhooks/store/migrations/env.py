"""Alembic environment: the engine (or connection) comes from `vlmhooks.store.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

import schemas.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

target_metadata = SQLModel.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    bound = context.config.attributes.get("connection")
    if isinstance(bound, Connection):
        _run(bound)
        return
    engine = context.config.attributes["engine"]
    assert isinstance(engine, Engine)
    with engine.connect() as connection:
        _run(connection)


if context.is_offline_mode():
    raise SystemExit("vlmhooks migrations run online only: use `vlm-receiver db upgrade`")
run_migrations_online()

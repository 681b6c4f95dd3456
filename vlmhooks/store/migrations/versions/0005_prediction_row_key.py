"""prediction.row_key: the event feed keyed by an integer surrogate of its prediction

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_PREDICTION_INDEXES = {
    "ix_prediction_created_at_id": ["created_at", "id"],
    "ix_prediction_domain_created_at": ["domain", "created_at"],
    "ix_prediction_status_created_at": ["status", "created_at"],
    "ix_prediction_submission_id": ["submission_id"],
}
_KEYED = {"prediction_event": ("ix_prediction_event_prediction_id", ["prediction_id"])}
_KEY_INDEXES = {"prediction_event": ("ix_prediction_event_prediction_key", ["prediction_key"])}


def _rebuild_sqlite_prediction(keyed: bool) -> None:
    """SQLite cannot change a primary key in place: a copy of the table, rows in rowid
    order, the row_key (when `keyed`) being the rowid each row already had."""
    bind = op.get_bind()
    old = sa.Table("prediction", sa.MetaData(), autoload_with=bind)
    names = [column.name for column in old.c if column.name != "row_key"]
    columns = [
        sa.Column(
            column.name,
            column.type,
            nullable=column.nullable and column.name != "id",
            primary_key=column.name == "id" and not keyed,
        )
        for column in old.c
        if column.name != "row_key"
    ]
    items: list[sa.schema.SchemaItem] = [*columns]
    if keyed:
        items = [
            sa.Column("row_key", sa.Integer(), primary_key=True),
            *columns,
            sa.UniqueConstraint("id", name="uq_prediction_id"),
        ]
    new = sa.Table("prediction_rebuilt", sa.MetaData(), *items)
    new.create(bind)
    listed = ", ".join(names)
    source = f"rowid, {listed}" if keyed else listed
    target = f"row_key, {listed}" if keyed else listed
    op.execute(
        f"INSERT INTO prediction_rebuilt ({target}) SELECT {source} FROM prediction"  # noqa: S608
        " ORDER BY rowid"
    )
    op.execute("DROP TABLE prediction")
    op.execute("ALTER TABLE prediction_rebuilt RENAME TO prediction")
    for name, index_columns in _PREDICTION_INDEXES.items():
        op.create_index(name, "prediction", index_columns)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_prediction(keyed=True)
    else:
        # BIGSERIAL numbers the existing rows from its new sequence.
        op.execute("ALTER TABLE prediction ADD COLUMN row_key BIGSERIAL NOT NULL")
        op.execute("ALTER TABLE prediction DROP CONSTRAINT prediction_pkey")
        op.create_primary_key("prediction_pkey", "prediction", ["row_key"])
        op.create_unique_constraint("uq_prediction_id", "prediction", ["id"])
    for table, (old_index, _) in _KEYED.items():
        op.add_column(table, sa.Column("prediction_key", sa.BigInteger(), nullable=True))
        # Every event follows its prediction's row (predictions are never pruned).
        op.execute(
            f"UPDATE {table} SET prediction_key = (SELECT p.row_key FROM prediction AS p"  # noqa: S608
            f" WHERE p.id = {table}.prediction_id)"
        )
        op.drop_index(old_index, table_name=table)
        new_index, columns = _KEY_INDEXES[table]
        op.create_index(new_index, table, columns)


def downgrade() -> None:
    for table, (old_index, columns) in _KEYED.items():
        op.drop_index(_KEY_INDEXES[table][0], table_name=table)
        op.create_index(old_index, table, columns)
        op.drop_column(table, "prediction_key")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_prediction(keyed=False)
    else:
        op.drop_constraint("uq_prediction_id", "prediction", type_="unique")
        op.execute("ALTER TABLE prediction DROP CONSTRAINT prediction_pkey")
        op.create_primary_key("prediction_pkey", "prediction", ["id"])
        op.execute("ALTER TABLE prediction DROP COLUMN row_key")

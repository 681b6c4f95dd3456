"""webhook_message.body_sha256: a replayed webhook-id is a duplicate only with the same body

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: ids accepted before this revision have no hash; the receiver compares
    # their prediction id instead (vlmhooks/store/batch.py).
    with op.batch_alter_table("webhook_message") as batch:
        batch.add_column(sa.Column("body_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_message") as batch:
        batch.drop_column("body_sha256")

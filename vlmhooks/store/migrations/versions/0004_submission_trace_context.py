"""submission.trace_context: the W3C trace context of the span that submitted it

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: a submission made with tracing off, or before this revision, links to nothing.
    with op.batch_alter_table("submission") as batch:
        batch.add_column(
            sa.Column("trace_context", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("submission") as batch:
        batch.drop_column("trace_context")

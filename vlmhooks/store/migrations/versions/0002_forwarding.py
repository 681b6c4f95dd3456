"""forwarding: forward_destination (the registry) and forward_outbox (the transactional outbox)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "forward_destination",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("events", JSON, nullable=True),
        sa.Column("domain", sa.String(128), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("disabled_at", TIME, nullable=True),
        sa.Column("disabled_reason", sa.String(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("last_error_at", TIME, nullable=True),
        sa.Column("last_delivered_at", TIME, nullable=True),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_table(
        "forward_outbox",
        sa.Column("id", BIGINT_PK, primary_key=True),
        sa.Column("destination_id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column(
            "event_seq", sa.BigInteger(), sa.ForeignKey("prediction_event.seq"), nullable=False
        ),
        sa.Column("prediction_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("next_attempt_at", TIME, nullable=False),
        sa.Column("lease_until", TIME, nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("dead_at", TIME, nullable=True),
    )
    op.create_index(
        "ix_forward_outbox_destination_state_id",
        "forward_outbox",
        ["destination_id", "state", "id"],
    )
    op.create_index(
        "ix_forward_outbox_destination_prediction_id",
        "forward_outbox",
        ["destination_id", "prediction_id", "id"],
    )


def downgrade() -> None:
    op.drop_table("forward_outbox")
    op.drop_table("forward_destination")

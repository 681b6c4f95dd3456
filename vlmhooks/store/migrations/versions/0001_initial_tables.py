"""initial tables: submission, prediction, delivery, prediction_event, webhook_message

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "submission",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("domain", sa.String(64), nullable=False),
        sa.Column("prompt", sa.String(), nullable=True),
        sa.Column("json_schema", JSON, nullable=True),
        sa.Column("callback_url", sa.String(), nullable=True),
        sa.Column("batch", sa.Boolean(), nullable=False),
        sa.Column("image_count", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("sent_at", TIME, nullable=True),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_index("ix_submission_prediction_id", "submission", ["prediction_id"])
    op.create_index("ix_submission_status_created_at", "submission", ["status", "created_at"])

    op.create_table(
        "prediction",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("submission_id", sa.String(64), nullable=True),
        sa.Column("domain", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_rank", sa.Integer(), nullable=False),
        sa.Column("response", JSON, nullable=True),
        sa.Column("usage", JSON, nullable=True),
        sa.Column("extra", JSON, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("completed_at", TIME, nullable=True),
        sa.Column("received_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("delivery_count", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("schema_valid", sa.Boolean(), nullable=True),
        sa.Column("schema_errors", JSON, nullable=True),
    )
    op.create_index("ix_prediction_created_at_id", "prediction", ["created_at", "id"])
    op.create_index("ix_prediction_domain_created_at", "prediction", ["domain", "created_at"])
    op.create_index("ix_prediction_status_created_at", "prediction", ["status", "created_at"])
    op.create_index("ix_prediction_submission_id", "prediction", ["submission_id"])

    op.create_table(
        "delivery",
        sa.Column("id", BIGINT_PK, primary_key=True),
        sa.Column("prediction_id", sa.String(128), nullable=True),
        sa.Column("submission_id", sa.String(64), nullable=True),
        sa.Column("received_at", TIME, nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("headers", JSON, nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("body_truncated", sa.Boolean(), nullable=False),
    )
    op.create_index(
        "ix_delivery_prediction_id_received_at", "delivery", ["prediction_id", "received_at"]
    )
    op.create_index("ix_delivery_submission_id", "delivery", ["submission_id"])

    op.create_table(
        "prediction_event",
        sa.Column("seq", BIGINT_PK, primary_key=True),
        sa.Column("prediction_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_index("ix_prediction_event_prediction_id", "prediction_event", ["prediction_id"])

    op.create_table(
        "webhook_message",
        sa.Column("id", sa.String(256), primary_key=True),
        sa.Column("prediction_id", sa.String(128), nullable=True),
        sa.Column("received_at", TIME, nullable=False),
    )
    op.create_index("ix_webhook_message_received_at", "webhook_message", ["received_at"])


def downgrade() -> None:
    for table in ("webhook_message", "prediction_event", "delivery", "prediction", "submission"):
        op.drop_table(table)

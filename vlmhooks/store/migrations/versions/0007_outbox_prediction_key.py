"""forward_outbox.prediction_key: forwarding's outbox keyed by its prediction's row_key

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

The outbox holds a change back while an earlier change of the same prediction is pending at
the same destination, through an index per destination and prediction. On the random text
id, a backlog's every insert and delete landed on a random page of it; on the row's key,
which grows with each new prediction, they land at its end.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_OLD_INDEX = (
    "ix_forward_outbox_destination_prediction_id",
    ["destination_id", "prediction_id", "id"],
)
_KEY_INDEX = (
    "ix_forward_outbox_destination_prediction_key",
    ["destination_id", "prediction_key", "id"],
)


def upgrade() -> None:
    op.add_column("forward_outbox", sa.Column("prediction_key", sa.BigInteger(), nullable=True))
    # Every outbox row follows its change's event, which follows its prediction's row
    # (predictions are never pruned).
    op.execute(
        "UPDATE forward_outbox SET prediction_key = (SELECT p.row_key FROM prediction AS p"
        " WHERE p.id = forward_outbox.prediction_id)"
    )
    op.drop_index(_OLD_INDEX[0], table_name="forward_outbox")
    op.create_index(_KEY_INDEX[0], "forward_outbox", _KEY_INDEX[1])


def downgrade() -> None:
    op.drop_index(_KEY_INDEX[0], table_name="forward_outbox")
    op.create_index(_OLD_INDEX[0], "forward_outbox", _OLD_INDEX[1])
    op.drop_column("forward_outbox", "prediction_key")

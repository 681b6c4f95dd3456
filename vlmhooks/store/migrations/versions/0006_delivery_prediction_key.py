"""delivery.prediction_key: the delivery log keyed by its prediction's row_key; the event
feed's key index with seq

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

The log's per-prediction index was on the random text id, so each callback wrote a random
page of it (bench/README.md, "Write amplification with realistic ids"). Deliveries are now
indexed by their prediction's row_key, which grows with each new prediction; those without
a row (a refusal of a prediction never stored, or a row deleted by hand) keep a partial
index on the text id, and a trigger moves a deleted row's deliveries there.

The event feed's index on the key gets `seq` as its second column: a prediction's response
is read from its newest event, the last entry of its range in that index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_OLD_INDEX = ("ix_delivery_prediction_id_received_at", ["prediction_id", "received_at"])
_KEY_INDEX = "ix_delivery_prediction_key"
_UNKEYED_INDEX = "ix_delivery_unkeyed_prediction_id"
_UNKEYED = sa.text("prediction_key IS NULL")
_EVENT_KEY_INDEX = ("ix_prediction_event_prediction_key", ["prediction_key"])
_EVENT_SEQ_INDEX = ("ix_prediction_event_prediction_key_seq", ["prediction_key", "seq"])
_TRIGGER = "tr_prediction_delete_unkeys_deliveries"
_FUNCTION = "vlmhooks_unkey_deliveries"
_UNKEY = "UPDATE delivery SET prediction_key = NULL WHERE prediction_key = OLD.row_key;"


def _create_trigger() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"CREATE TRIGGER {_TRIGGER} AFTER DELETE ON prediction BEGIN {_UNKEY} END")
        return
    op.execute(
        f"CREATE FUNCTION {_FUNCTION}() RETURNS trigger LANGUAGE plpgsql"
        f" AS $$ BEGIN {_UNKEY} RETURN OLD; END $$"
    )
    op.execute(
        f"CREATE TRIGGER {_TRIGGER} AFTER DELETE ON prediction"
        f" FOR EACH ROW EXECUTE FUNCTION {_FUNCTION}()"
    )


def _drop_trigger() -> None:
    op.execute(f"DROP TRIGGER {_TRIGGER}" + ("" if _sqlite() else " ON prediction"))
    if not _sqlite():
        op.execute(f"DROP FUNCTION {_FUNCTION}()")


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    op.add_column("delivery", sa.Column("prediction_key", sa.BigInteger(), nullable=True))
    # Predictions are never pruned: every delivery naming a stored prediction gets its key.
    op.execute(
        "UPDATE delivery SET prediction_key = (SELECT p.row_key FROM prediction AS p"
        " WHERE p.id = delivery.prediction_id) WHERE prediction_id IS NOT NULL"
    )
    op.drop_index(_OLD_INDEX[0], table_name="delivery")
    op.create_index(_KEY_INDEX, "delivery", ["prediction_key"])
    op.create_index(
        _UNKEYED_INDEX,
        "delivery",
        ["prediction_id"],
        sqlite_where=_UNKEYED,
        postgresql_where=_UNKEYED,
    )
    _create_trigger()
    op.drop_index(_EVENT_KEY_INDEX[0], table_name="prediction_event")
    op.create_index(_EVENT_SEQ_INDEX[0], "prediction_event", _EVENT_SEQ_INDEX[1])


def downgrade() -> None:
    op.drop_index(_EVENT_SEQ_INDEX[0], table_name="prediction_event")
    op.create_index(_EVENT_KEY_INDEX[0], "prediction_event", _EVENT_KEY_INDEX[1])
    _drop_trigger()
    op.drop_index(_UNKEYED_INDEX, table_name="delivery")
    op.drop_index(_KEY_INDEX, table_name="delivery")
    op.create_index(_OLD_INDEX[0], "delivery", _OLD_INDEX[1])
    op.drop_column("delivery", "prediction_key")

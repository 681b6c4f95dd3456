"""Opaque keyset cursors: base64url JSON of the last row's immutable sort key.

A cursor names a position, not an offset, so rows inserted while a client pages never
shift what it sees next. Each listing has its own tag, so a cursor from one list is
refused by another; anything that does not decode to a well-formed key is a 400.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from schemas.contract import as_utc
from vlmhooks.errors import PayloadError

CURSOR_PARAM = "cursor"
SKIP_PARAM = "skip"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# `skip` is the API's offset (the public SDK pages with it). An offset costs the database
# every skipped row, so it is bounded; past it, follow the keyset cursor instead.
MAX_SKIP = 100_000
MAX_CURSOR_CHARS = 1024
MAX_ROW_ID = 2**63 - 1  # PostgreSQL bigint
PREDICTIONS_TAG = "p1"
DELIVERIES_TAG = "d1"


@dataclass(frozen=True)
class PredictionKey:
    """Position in the predictions list: newest first by (created_at, id)."""

    created_at: datetime
    id: str


@dataclass(frozen=True)
class DeliveryKey:
    """Position in the deliveries list: newest first by id."""

    id: int


def _encode(parts: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(parts)).rstrip(b"=").decode("ascii")


def _decode(cursor: str, tag: str) -> list[Any]:
    invalid = PayloadError(f"{CURSOR_PARAM}: not a cursor this list issued", parameter=CURSOR_PARAM)
    if len(cursor) > MAX_CURSOR_CHARS or not cursor.isascii():
        raise invalid
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        parts = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise invalid from None
    if not isinstance(parts, list) or not parts or parts[0] != tag:
        raise invalid
    return parts[1:]


def encode_prediction_cursor(key: PredictionKey) -> str:
    return _encode([PREDICTIONS_TAG, as_utc(key.created_at).isoformat(), key.id])


def decode_prediction_cursor(cursor: str) -> PredictionKey:
    parts = _decode(cursor, PREDICTIONS_TAG)
    invalid = PayloadError(f"{CURSOR_PARAM}: malformed cursor", parameter=CURSOR_PARAM)
    if len(parts) != 2 or not all(isinstance(part, str) for part in parts):
        raise invalid
    created_at, prediction_id = parts
    if not prediction_id or "\x00" in prediction_id:
        raise invalid
    try:
        return PredictionKey(as_utc(datetime.fromisoformat(created_at)), prediction_id)
    except (ValueError, OverflowError):
        raise invalid from None


def encode_delivery_cursor(key: DeliveryKey) -> str:
    return _encode([DELIVERIES_TAG, key.id])


def decode_delivery_cursor(cursor: str) -> DeliveryKey:
    parts = _decode(cursor, DELIVERIES_TAG)
    # bool is an int in Python; a JSON `true` is not a row id.
    if len(parts) != 1 or type(parts[0]) is not int or not 1 <= parts[0] <= MAX_ROW_ID:
        raise PayloadError(f"{CURSOR_PARAM}: malformed cursor", parameter=CURSOR_PARAM)
    return DeliveryKey(parts[0])

"""What the database can hold: limits a contract-valid prediction must also meet to be stored.

The contract bounds none of these, but the tables do (column widths, PostgreSQL's refusal of
U+0000, the JSON encoder's nesting limit); checking them up front makes each a 422 naming
the field instead of a failed INSERT and a 500.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
from sqlmodel import SQLModel

from schemas.contract import PredictionResponse, Usage
from schemas.tables import Prediction, Submission
from vlmhooks.errors import ContractViolation
from vlmhooks.ingest.numbers import first_inexact_number
from vlmhooks.public import iso_utc

__all__ = [
    "MAX_DOMAIN_CHARS",
    "MAX_PREDICTION_ID_CHARS",
    "MAX_SUBMISSION_ID_CHARS",
    "check_storable",
    "column_width",
    "content_digest",
    "find_nul",
    "storable_content",
    "storable_content_hash",
    "usage_json",
]


def column_width(model: type[SQLModel], name: str) -> int:
    """The declared length of a bounded string column (`VARCHAR(n)`)."""
    column = model.metadata.tables[str(model.__tablename__)].c[name]
    # getattr: SQLModel's AutoString is a TypeDecorator that forwards `length` to its String.
    length = getattr(column.type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"{column} is not a bounded string column")
    return length


# Read from the table declarations, so a migration that widens a column widens the check.
MAX_PREDICTION_ID_CHARS = column_width(Prediction, "id")
MAX_SUBMISSION_ID_CHARS = column_width(Submission, "id")
MAX_DOMAIN_CHARS = column_width(Prediction, "domain")
# JSON can only carry U+0000 escaped, so a body without this sequence holds none.
_NUL_ESCAPE = b"\\u0000"
_INEXACT_MESSAGE = (
    "a number that cannot be stored exactly (beyond 64-bit integers or double precision); "
    "send it as a string"
)


def _unstorable(field: str, message: str) -> ContractViolation:
    return ContractViolation(
        f"invalid fields: {field} ({message})", errors=[{"field": field, "message": message}]
    )


def check_storable(
    payload: Mapping[str, Any], prediction: PredictionResponse, *, raw: bytes | None = None
) -> None:
    """`ContractViolation` unless every value fits its column; `raw` (the body) speeds it up."""
    if len(prediction.id) > MAX_PREDICTION_ID_CHARS:
        raise _unstorable("id", f"at most {MAX_PREDICTION_ID_CHARS} characters")
    if "/" in prediction.id:
        # `GET /v1/predictions/{id}` could never address it (a path segment, even
        # percent-encoded, is decoded before routing): refused rather than stored unreachable.
        raise _unstorable("id", "must not contain '/' (the lookup API could not address it)")
    if raw is not None:
        inexact = first_inexact_number(raw)
        if inexact is not None:
            raise _unstorable(inexact, _INEXACT_MESSAGE)
        if _NUL_ESCAPE not in raw:
            return
    path = find_nul(payload)
    if path is not None:
        raise _unstorable(path, "U+0000 cannot be stored")


def find_nul(value: Any) -> str | None:
    """The path of the first key or string holding U+0000, else None.

    Iterative, because the parser accepts nesting deeper than Python's recursion limit.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return path or "<root>"
        elif isinstance(node, Mapping):
            for key, child in node.items():
                name = str(key).replace("\x00", "\\u0000")
                child_path = f"{path}.{name}" if path else name
                if "\x00" in str(key):
                    return child_path
                stack.append((child_path, child))
        elif isinstance(node, list | tuple):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(node))
    return None


def usage_json(usage: Usage | None) -> dict[str, Any] | None:
    """`usage.model_dump(mode="json")`: its fields and the unknown ones it kept, all JSON
    values already (ints, strings, None, and whatever JSON the sender added)."""
    if usage is None:
        return None
    extra = usage.__pydantic_extra__
    return {**usage.__dict__, **extra} if extra else dict(usage.__dict__)


def storable_content_hash(
    prediction: PredictionResponse, payload: Mapping[str, Any] | None = None
) -> str:
    """The content hash the store dedups on (see `storable_content`)."""
    return storable_content(prediction, payload)[0]


def storable_content(
    prediction: PredictionResponse, payload: Mapping[str, Any] | None = None
) -> tuple[str, int]:
    """The content hash the store dedups on, and the size of the JSON hashed; 422 when the
    value is nested too deep to encode.

    `payload`, the parsed JSON `prediction` was validated from, saves re-serializing
    `response` and the unknown fields through pydantic (they are kept verbatim, so JSON
    in, JSON out): only the fields the contract normalizes are dumped. Same hash either way.
    """
    try:
        if payload is None:
            wire = prediction.to_wire()
        else:
            wire = dict(payload)
            # What `model_dump(mode="json")` gives for these fields, without its per-call
            # cost: times in UTC as pydantic writes them, usage with its defaults.
            wire["usage"] = usage_json(prediction.usage)
            wire["created_at"] = iso_utc(prediction.created_at)
            wire["completed_at"] = iso_utc(prediction.completed_at)
            wire["status"] = prediction.status.value
            wire.setdefault("response", None)
        if "created_at" not in prediction.model_fields_set:
            # The contract fills a missing created_at with "now", which differs on every
            # redelivery; hashing what the sender sent keeps an identical body a duplicate.
            wire["created_at"] = None
        return content_digest(wire)
    except (TypeError, ValueError, RecursionError) as exc:
        # pydantic and orjson both stop near 255 levels, well below the parser's 1,024.
        raise _unstorable("<root>", f"nested too deeply to store ({exc})") from exc


def content_digest(wire: dict[str, Any]) -> tuple[str, int]:
    """The SHA-256 of the canonical JSON (so the same prediction polled or called back
    dedups), and the size of that JSON."""
    canonical = orjson.dumps(wire, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest(), len(canonical)

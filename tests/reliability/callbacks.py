"""Callback bodies, signatures, scratch databases and probes shared by the reliability tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from schemas.enums import Status
from tests.conftest import POSTGRES_ADMIN_DSN
from vlmhooks.store import migrate
from vlmhooks.store.db import make_engine
from vlmhooks.store.tables import PREDICTION_READ, SUBMISSION
from vlmhooks.trust.signatures import VLMRUN_SIGNATURE_HEADER, sign_vlmrun, standard_webhook_headers

SECRET_KEY = "reliability-callback-token-key"
WEBHOOK_SECRET = "reliability-vlmrun-webhook-secret"
# A Standard Webhooks HMAC secret: whsec_ + base64 of 24 bytes.
STANDARD_SECRET = "whsec_cmVsaWFiaWxpdHktc3RhbmRhcmQtd2ViaG9vaw=="
LOOKUP_KEY = "reliability-lookup-key"
CREATED_AT = "2026-11-24T11:59:00Z"
COMPLETED_AT = "2026-11-24T11:59:30Z"


def prediction_body(prediction_id: str, status: Status) -> dict[str, Any]:
    """The callback the API sends for `prediction_id` at `status`: the same bytes every time."""
    response: Any = None
    if status is Status.COMPLETED:
        response = {"caption": f"a picture for {prediction_id}", "confidence": 0.93}
    elif status is Status.FAILED:
        response = {"error": "the model could not read the image"}
    return {
        "usage": {"elements_processed": 1, "element_type": "image", "credits_used": 1},
        "id": prediction_id,
        "created_at": CREATED_AT,
        "completed_at": COMPLETED_AT if status.is_terminal else None,
        "response": response,
        "status": status.value,
        "domain": "image.caption",
    }


def encode(body: Any) -> bytes:
    return orjson.dumps(body)


def vlmrun_headers(body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        VLMRUN_SIGNATURE_HEADER: sign_vlmrun(WEBHOOK_SECRET, body),
    }


def standard_headers(body: bytes, message_id: str, now: float) -> dict[str, str]:
    return standard_webhook_headers(STANDARD_SECRET, message_id, int(now), body)


def add_submissions(engine: Engine, submission_ids: list[str]) -> None:
    """Submission rows, as the submitter records them before sending."""
    now = datetime.now(UTC)
    rows = [
        {
            "id": submission_id,
            "request_id": f"req_{submission_id}",
            "domain": "image.caption",
            "batch": True,
            "image_count": 1,
            "created_at": now,
            "updated_at": now,
        }
        for submission_id in submission_ids
    ]
    with engine.begin() as connection:
        connection.execute(SUBMISSION.insert(), rows)


def prediction_rows(engine: Engine) -> dict[str, sa.RowMapping]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(*PREDICTION_READ)).mappings().all()
    return {row["id"]: row for row in rows}


@contextmanager
def scratch_database(kind: str, request: pytest.FixtureRequest, folder: Path) -> Iterator[str]:
    """A migrated database for a module-scoped fixture: a SQLite file in `folder`, or (kind
    `postgres`) a clone of the session's migrated template, dropped afterwards."""
    if kind != "postgres":
        url = f"sqlite:///{folder / 'vlmhooks.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url
        return
    template = request.getfixturevalue("postgres_template")
    name = f"vlmhooks_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        yield f"{POSTGRES_ADMIN_DSN.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

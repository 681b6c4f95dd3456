"""Realistic signed callbacks (~1.5 KB) shared by the load generators: random UUID prediction
ids as VLM Run mints them, time-ordered submission ids as `vlm-submit` mints them, and
`created_at` moving forward."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import orjson

from vlmhooks.trust.signatures import sign_vlmrun
from vlmhooks.trust.tokens import CallbackTokens, new_submission_id

# 32 bytes or more: `serve` warns about shorter keys, and the warning would pollute the output.
BENCH_SECRET_KEY = "bench-secret-key-of-thirty-two-bytes"
BENCH_WEBHOOK_SECRET = "bench-webhook-secret"
BENCH_SUBMISSION_ID = "sub_bench"
# The first callback's `created_at`; each next one is created CREATED_STEP later, about the
# pace of one busy receiver.
BENCH_EPOCH = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CREATED_STEP = timedelta(microseconds=500)


@dataclass(frozen=True)
class SignedCallback:
    path: str
    body: bytes
    signature: str


def invoice_response(rng: random.Random) -> dict[str, object]:
    items = [
        {
            "description": f"Line item {n} — consulting hours",
            "quantity": rng.randint(1, 20),
            "unit_price": round(rng.uniform(10, 300), 2),
            "amount": round(rng.uniform(10, 3000), 2),
        }
        for n in range(6)
    ]
    return {
        "invoice_id": f"INV-{rng.randint(10000, 99999)}",
        "invoice_issue_date": "2026-11-20",
        "invoice_due_date": "2026-12-20",
        "order_id": None,
        "customer_id": f"C-{rng.randint(100, 999)}",
        "issuer": "Acme Analytics GmbH",
        "issuer_address": {
            "street": "Friedrichstraße 123",
            "city": "Berlin",
            "postal_code": "10117",
            "country": "DE",
        },
        "customer": "Globex Corporation",
        "customer_address": {
            "street": "42 Industrial Way",
            "city": "Springfield",
            "postal_code": "49007",
            "country": "US",
        },
        "items": items,
        "subtotal": 5120.5,
        "tax": 972.9,
        "total": 6093.4,
        "currency": "EUR",
        "notes": "Payment within 30 days of the issue date by bank transfer. "
        "Please quote the invoice number. Thank you for your business.",
        "payment_terms": "NET30",
    }


def bench_tokens() -> CallbackTokens:
    return CallbackTokens([BENCH_SECRET_KEY], max_age_seconds=30 * 24 * 3600)


def callback_path(tokens: CallbackTokens, submission_id: str) -> str:
    return f"/v1/callbacks/{tokens.mint(submission_id)}"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def signed_callbacks(
    count: int,
    *,
    seed: int = 7,
    prefix: str = "pred_bench",
    ids: Literal["uuid", "ordered"] = "uuid",
) -> Iterator[SignedCallback]:
    """`count` completed-invoice callbacks, signed like the real API. `ids="uuid"`: random
    UUID prediction ids (from `seed` and `prefix`, so each prefix has ids of its own) and
    ULID submission ids; `"ordered"`: `{prefix}_00000001`-style ids, the older benches'."""
    rng = random.Random(f"{seed}:{prefix}")
    tokens = bench_tokens()
    epoch = BENCH_EPOCH.timestamp()
    for index in range(count):
        created = BENCH_EPOCH + index * CREATED_STEP
        if ids == "uuid":
            prediction_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            submission_id = new_submission_id(now=epoch + index * CREATED_STEP.total_seconds())
        else:
            prediction_id = f"{prefix}_{index:08d}"
            submission_id = f"{BENCH_SUBMISSION_ID}_{prefix}_{index}"
        # One callback URL per prediction, as the submitter mints them: a URL binds to the
        # first prediction stored through it, so a shared URL would be 409 after the first.
        path = callback_path(tokens, submission_id)
        body = orjson.dumps(
            {
                "usage": {"elements_processed": 1, "element_type": "image", "credits_used": 1},
                "id": prediction_id,
                "created_at": _iso(created),
                "completed_at": _iso(created + timedelta(seconds=3)),
                "response": invoice_response(rng),
                "status": "completed",
                "domain": "document.invoice",
            }
        )
        yield SignedCallback(path, body, sign_vlmrun(BENCH_WEBHOOK_SECRET, body))

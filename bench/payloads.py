"""Realistic signed callbacks (~1.5 KB, unique ids) shared by the load generators."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from vlmhooks.trust.signatures import sign_vlmrun
from vlmhooks.trust.tokens import CallbackTokens

# 32 bytes or more: `serve` warns about shorter keys, and the warning would pollute the output.
BENCH_SECRET_KEY = "bench-secret-key-of-thirty-two-bytes"
BENCH_WEBHOOK_SECRET = "bench-webhook-secret"
BENCH_SUBMISSION_ID = "sub_bench"


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


def signed_callbacks(
    count: int, *, seed: int = 7, prefix: str = "pred_bench"
) -> Iterator[SignedCallback]:
    """`count` completed-invoice callbacks with unique ids, signed like the real API."""
    rng = random.Random(seed)
    tokens = bench_tokens()
    for index in range(count):
        # One callback URL per prediction, as the submitter mints them: a URL binds to the
        # first prediction stored through it, so a shared URL would be 409 after the first.
        path = callback_path(tokens, f"{BENCH_SUBMISSION_ID}_{prefix}_{index}")
        body = orjson.dumps(
            {
                "usage": {"elements_processed": 1, "element_type": "image", "credits_used": 1},
                "id": f"{prefix}_{index:08d}",
                "created_at": "2026-11-24T12:00:00Z",
                "completed_at": "2026-11-24T12:00:03Z",
                "response": invoice_response(rng),
                "status": "completed",
                "domain": "document.invoice",
            }
        )
        yield SignedCallback(path, body, sign_vlmrun(BENCH_WEBHOOK_SECRET, body))

"""Shapes of the ``document.*`` domains: one page per image, money in whole cents."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sandbox.predictor.draw import money, percent_of
from sandbox.predictor.features import ImageFeatures
from sandbox.predictor.shape_context import ShapeContext
from sandbox.predictor.vocabulary import (
    COMPANY_WORDS,
    CURRENCIES,
    DEGREES,
    FIELDS_OF_STUDY,
    GROCERIES,
    JOB_TITLES,
    SERVICES,
    SKILLS,
    UNIVERSITIES,
)

__all__ = [
    "generative",
    "invoice",
    "markdown",
    "ocr",
    "presentation",
    "receipt",
    "resume",
    "utility_bill",
]


def invoice(ctx: ShapeContext) -> dict[str, Any]:
    d = ctx.draw
    issue = d.day()
    terms = d.choice((15, 30, 45, 60))
    currency = d.choice(CURRENCIES)
    items: list[dict[str, Any]] = []
    subtotal = 0
    for description in d.sample(SERVICES, min(1 + d.below(4) + len(ctx.features), 8)):
        quantity = d.integer(1, 12)
        unit = d.integer(5_00, 450_00)
        subtotal += quantity * unit
        items.append(
            {
                "description": description,
                "quantity": quantity,
                "unit_price": money(unit),
                "amount": money(quantity * unit),
            }
        )
    tax_bp = d.choice((0, 500, 800, 1000, 1900, 2000))
    tax = percent_of(subtotal, tax_bp)
    vendor, customer, contact = ctx.company(), ctx.company(), ctx.person()
    return {
        "invoice_id": f"INV-{issue.year}-{d.digits(5)}",
        "issue_date": issue.isoformat(),
        "due_date": (issue + timedelta(days=terms)).isoformat(),
        "payment_terms": f"Net {terms}",
        "purchase_order": f"PO-{d.digits(6)}",
        "vendor_name": vendor,
        "vendor_address": ctx.address(),
        "vendor_email": ctx.email("billing", vendor),
        "customer_name": customer,
        "customer_contact": contact,
        "customer_email": ctx.email(contact, customer),
        "customer_address": ctx.address(),
        "line_items": items,
        "currency": currency,
        "subtotal": money(subtotal),
        "tax_rate": tax_bp / 100,
        "tax": money(tax),
        "total": money(subtotal + tax),
        "amount_due": money(subtotal + tax),
        "page_count": len(ctx.features),
        "notes": "Thank you for your business.",
    }


def receipt(ctx: ShapeContext) -> dict[str, Any]:
    d = ctx.draw
    items: list[dict[str, Any]] = []
    subtotal = 0
    for name in d.sample(GROCERIES, d.integer(2, 7)):
        quantity = d.integer(1, 3)
        unit = d.integer(99, 24_99)
        subtotal += quantity * unit
        items.append(
            {
                "name": name,
                "quantity": quantity,
                "unit_price": money(unit),
                "total": money(quantity * unit),
            }
        )
    tax = percent_of(subtotal, d.choice((0, 600, 825, 1000)))
    tip = d.choice((0, 0, percent_of(subtotal, 1500), percent_of(subtotal, 1800)))
    method = d.choice(("VISA", "Mastercard", "AMEX", "Cash", "Debit"))
    merchant = f"{d.choice(COMPANY_WORDS)} Market"
    return {
        "merchant_name": merchant,
        "merchant_address": ctx.address(),
        "merchant_phone": ctx.phone(),
        "receipt_number": d.digits(8),
        "transaction_date": d.day().isoformat(),
        "transaction_time": f"{d.integer(7, 21):02d}:{d.integer(0, 59):02d}",
        "items": items,
        "currency": d.choice(CURRENCIES),
        "subtotal": money(subtotal),
        "tax": money(tax),
        "tip": money(tip),
        "total": money(subtotal + tax + tip),
        "payment_method": method,
        "card_last4": None if method == "Cash" else d.digits(4),
    }


def resume(ctx: ShapeContext) -> dict[str, Any]:
    d = ctx.draw
    name = ctx.person()
    graduation = d.day(date(2005, 6, 1), 5000)
    experience: list[dict[str, Any]] = []
    end: date | None = None
    for _ in range(d.integer(1, 3)):
        finish = end or d.day(date(2022, 1, 1), 700)
        start = finish - timedelta(days=d.integer(300, 1800))
        experience.append(
            {
                "company": ctx.company(),
                "title": d.choice(JOB_TITLES),
                "start_date": start.isoformat(),
                "end_date": None if end is None else finish.isoformat(),
                "description": ctx.sentence(),
            }
        )
        end = start - timedelta(days=d.integer(10, 90))
    return {
        "contact_info": {
            "full_name": name,
            "email": ctx.email(name, "mail"),
            "phone": ctx.phone(),
            "location": ctx.address()["city"],
            "linkedin": f"https://www.linkedin.com/in/{name.lower().replace(' ', '-')}",
        },
        "summary": ctx.sentence(10, 18),
        "work_experience": experience,
        "education": [
            {
                "institution": f"{d.choice(COMPANY_WORDS)} {d.choice(UNIVERSITIES)}",
                "degree": d.choice(DEGREES),
                "field_of_study": d.choice(FIELDS_OF_STUDY),
                "graduation_date": graduation.isoformat(),
            }
        ],
        "skills": d.sample(SKILLS, d.integer(3, 6)),
        "certifications": [],
    }


def utility_bill(ctx: ShapeContext) -> dict[str, Any]:
    d = ctx.draw
    kind, unit, rate_cents = d.choice(
        (("electricity", "kWh", 17), ("natural gas", "therms", 130), ("water", "gal", 1))
    )
    period_end = d.day()
    period_start = period_end - timedelta(days=d.integer(28, 31))
    quantity = d.integer(80, 1200) if unit != "gal" else d.integer(1500, 9000)
    usage_cents = quantity * rate_cents
    lines = [
        (f"{kind.capitalize()} usage", usage_cents),
        ("Basic service charge", d.integer(5_00, 25_00)),
        ("Taxes and fees", percent_of(usage_cents, 500)),
    ]
    charges = [{"description": text, "amount": money(cents)} for text, cents in lines]
    current = sum(cents for _text, cents in lines)
    previous = d.integer(0, 300_00)
    return {
        "provider_name": f"{d.choice(COMPANY_WORDS)} Utilities",
        "utility_type": kind,
        "account_number": d.digits(10),
        "customer_name": ctx.person(),
        "service_address": ctx.address(),
        "statement_date": (period_end + timedelta(days=2)).isoformat(),
        "billing_period": {
            "start_date": period_start.isoformat(),
            "end_date": period_end.isoformat(),
        },
        "due_date": (period_end + timedelta(days=23)).isoformat(),
        "meter_number": f"M-{d.digits(7)}",
        "usage": {"quantity": quantity, "unit": unit},
        "charges": charges,
        "currency": "USD",
        "previous_balance": money(previous),
        "payments_received": money(previous),
        "current_charges": money(current),
        "total_amount_due": money(current),
    }


def _page_lines(ctx: ShapeContext, features: ImageFeatures) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    count = ctx.draw.integer(3, 8)
    line_height = max(1, features.height // (count + 2))
    for i in range(count):
        lines.append(
            {
                "text": ctx.sentence(),
                "bbox": {
                    "x": features.width // 10,
                    "y": line_height * (i + 1),
                    "width": max(1, features.width * 8 // 10),
                    "height": max(1, line_height * 2 // 3),
                },
                "confidence": round(0.8 + ctx.draw.below(200) / 1000, 3),
            }
        )
    return lines


def ocr(ctx: ShapeContext) -> dict[str, Any]:
    pages: list[dict[str, Any]] = []
    for number, features in enumerate(ctx.features, start=1):
        lines = _page_lines(ctx, features)
        pages.append(
            {
                "page_number": number,
                "width": features.width,
                "height": features.height,
                "text": "\n".join(line["text"] for line in lines),
                "lines": lines,
            }
        )
    return {"text": "\n\n".join(p["text"] for p in pages), "language": "en", "pages": pages}


def markdown(ctx: ShapeContext) -> dict[str, Any]:
    pages: list[dict[str, Any]] = []
    for number, _features in enumerate(ctx.features, start=1):
        rows = "\n".join(
            f"| {ctx.draw.choice(SERVICES)} | {ctx.draw.integer(1, 9)} |"
            for _ in range(ctx.draw.integer(2, 4))
        )
        body = (
            f"## {ctx.sentence(2, 4)[:-1]}\n\n{ctx.sentence()} {ctx.sentence()}\n\n"
            f"| Item | Qty |\n| --- | --- |\n{rows}\n"
        )
        pages.append({"page_number": number, "markdown": body})
    title = ctx.sentence(2, 5)[:-1]
    markdown = f"# {title}\n\n" + "\n".join(p["markdown"] for p in pages)
    return {"title": title, "markdown": markdown, "pages": pages}


def generative(ctx: ShapeContext) -> dict[str, Any]:
    pages: list[dict[str, Any]] = [
        {"page_number": n, "text": " ".join(ctx.sentence() for _ in range(3))}
        for n in range(1, len(ctx.features) + 1)
    ]
    return {
        "title": ctx.sentence(2, 5)[:-1],
        "document_type": ctx.draw.choice(("report", "letter", "memo", "form", "brochure")),
        "summary": ctx.sentence(12, 20),
        "key_points": [ctx.sentence() for _ in range(ctx.draw.integer(2, 4))],
        "entities": [
            {"type": "organization", "value": ctx.company()},
            {"type": "person", "value": ctx.person()},
            {"type": "date", "value": ctx.draw.day().isoformat()},
        ],
        "text": "\n\n".join(p["text"] for p in pages),
        "pages": pages,
    }


def presentation(ctx: ShapeContext) -> dict[str, Any]:
    pages: list[dict[str, Any]] = []
    for number, _features in enumerate(ctx.features, start=1):
        title = ctx.sentence(2, 4)[:-1]
        bullets = [ctx.sentence(4, 8) for _ in range(ctx.draw.integer(2, 5))]
        pages.append(
            {
                "page_number": number,
                "title": title,
                "bullets": bullets,
                "markdown": f"## {title}\n\n" + "\n".join(f"- {b}" for b in bullets),
                "speaker_notes": ctx.sentence(),
            }
        )
    return {
        "title": pages[0]["title"],
        "slide_count": len(pages),
        "markdown": "\n\n".join(p["markdown"] for p in pages),
        "pages": pages,
    }

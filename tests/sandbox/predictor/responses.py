"""What the predictor tests expect of a response: each domain's fields, the metadata aside."""

from __future__ import annotations

from typing import Any

from sandbox.predictor import SANDBOX_KEY

# The fields each domain's response carries at least.
DOMAIN_FIELDS: dict[str, set[str]] = {
    "aerospace.remote-sensing": {"description", "scene_type", "land_cover", "cloud_cover"},
    "document.ocr": {"text", "pages"},
    "document.generative": {"title", "summary", "text", "pages"},
    "document.invoice": {
        "invoice_id",
        "issue_date",
        "due_date",
        "vendor_name",
        "vendor_address",
        "customer_name",
        "line_items",
        "subtotal",
        "tax",
        "total",
        "currency",
    },
    "document.markdown": {"markdown", "pages"},
    "document.presentation": {"title", "markdown", "pages"},
    "document.receipt": {
        "merchant_name",
        "transaction_date",
        "items",
        "subtotal",
        "tax",
        "total",
        "currency",
    },
    "document.resume": {"contact_info", "summary", "work_experience", "education", "skills"},
    "document.utility-bill": {
        "provider_name",
        "account_number",
        "billing_period",
        "due_date",
        "usage",
        "charges",
        "total_amount_due",
    },
    "image.caption": {"caption", "tags"},
    "retail.product-catalog": {"product_name", "brand", "category", "price", "currency", "sku"},
    "retail.ecommerce-product-caption": {"title", "description", "category", "tags"},
    "video.tv-news": {"summary", "topics", "segments"},
    "video.caption": {"caption", "segments"},
    "video.commentary": {"summary", "segments"},
}


def without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != SANDBOX_KEY}

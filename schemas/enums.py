"""The contract's enumerations and the forward-only ordering of prediction statuses."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Domain(StrEnum):
    AEROSPACE_REMOTE_SENSING = "aerospace.remote-sensing"
    DOCUMENT_OCR = "document.ocr"
    DOCUMENT_GENERATIVE = "document.generative"
    DOCUMENT_INVOICE = "document.invoice"
    DOCUMENT_MARKDOWN = "document.markdown"
    DOCUMENT_PRESENTATION = "document.presentation"
    DOCUMENT_RECEIPT = "document.receipt"
    DOCUMENT_RESUME = "document.resume"
    DOCUMENT_UTILITY_BILL = "document.utility-bill"
    IMAGE_CAPTION = "image.caption"
    RETAIL_PRODUCT_CATALOG = "retail.product-catalog"
    RETAIL_ECOMMERCE_PRODUCT_CAPTION = "retail.ecommerce-product-caption"
    VIDEO_TV_NEWS = "video.tv-news"
    VIDEO_CAPTION = "video.caption"
    VIDEO_COMMENTARY = "video.commentary"


class Status(StrEnum):
    ENQUEUED = "enqueued"
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    PAUSED = "paused"

    @property
    def rank(self) -> int:
        """Position in the lifecycle; a delivery may only move a prediction to a higher rank."""
        return STATUS_RANK[self]

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


# running and paused share a rank: a job may pause and resume, but never go back to the queue.
STATUS_RANK: dict[Status, int] = {
    Status.ENQUEUED: 0,
    Status.PENDING: 1,
    Status.RUNNING: 2,
    Status.PAUSED: 2,
    Status.COMPLETED: 3,
    Status.FAILED: 3,
}
TERMINAL_STATUSES: frozenset[Status] = frozenset({Status.COMPLETED, Status.FAILED})


MODEL_VLM_1: Final = "vlm-1"

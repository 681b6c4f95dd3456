"""Which shape answers each ``Domain`` when no ``json_schema`` is given."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from sandbox.errors import PredictionFailed
from sandbox.predictor import document_shapes, image_shapes, video_shapes
from sandbox.predictor.shape_context import ShapeContext
from schemas.enums import Domain

__all__ = ["DOMAIN_SHAPES", "Shape", "shape_for"]

Shape = Callable[[ShapeContext], dict[str, Any]]

# Keyed by the contract's Domain so a domain added there without a shape here is caught:
# tests/sandbox/predictor/test_shapes.py asks shape_for for every Domain member.
DOMAIN_SHAPES: Final[Mapping[Domain, Shape]] = {
    Domain.AEROSPACE_REMOTE_SENSING: image_shapes.remote_sensing,
    Domain.DOCUMENT_OCR: document_shapes.ocr,
    Domain.DOCUMENT_GENERATIVE: document_shapes.generative,
    Domain.DOCUMENT_INVOICE: document_shapes.invoice,
    Domain.DOCUMENT_MARKDOWN: document_shapes.markdown,
    Domain.DOCUMENT_PRESENTATION: document_shapes.presentation,
    Domain.DOCUMENT_RECEIPT: document_shapes.receipt,
    Domain.DOCUMENT_RESUME: document_shapes.resume,
    Domain.DOCUMENT_UTILITY_BILL: document_shapes.utility_bill,
    Domain.IMAGE_CAPTION: image_shapes.image_caption,
    Domain.RETAIL_PRODUCT_CATALOG: image_shapes.product_catalog,
    Domain.RETAIL_ECOMMERCE_PRODUCT_CAPTION: image_shapes.ecommerce_product_caption,
    Domain.VIDEO_TV_NEWS: video_shapes.tv_news,
    Domain.VIDEO_CAPTION: video_shapes.video_caption,
    Domain.VIDEO_COMMENTARY: video_shapes.commentary,
}


def shape_for(domain: str) -> Shape:
    """The shape for ``domain``; ``PredictionFailed`` when it is not a ``Domain`` value.

    A ``Domain`` with no entry in ``DOMAIN_SHAPES`` is a bug here, not the caller's fault,
    so it raises ``LookupError`` rather than ``PredictionFailed``.
    """
    try:
        known = Domain(domain)
    except ValueError:
        expected = tuple(d.value for d in Domain)
        raise PredictionFailed(f"unknown domain {domain!r}; expected one of {expected}") from None
    shape = DOMAIN_SHAPES.get(known)
    if shape is None:
        raise LookupError(f"no response shape for domain {known.value!r} in DOMAIN_SHAPES")
    return shape

"""Send prediction requests with signed callback URLs, and heal callbacks that never arrived."""

from submit.client import AsyncVlmRunClient, ReceiverClient, VlmRunClient
from submit.errors import (
    ApiError,
    AuthenticationError,
    BadRequest,
    ConfigError,
    ImageError,
    NotFound,
    RateLimited,
    ServerError,
    SubmitError,
    TransportError,
)
from submit.images import ImageSource, expand_image_inputs
from submit.reconcile import ReconcileSummary, parse_duration, reconcile_once
from submit.retry import RetryPolicy
from submit.submitter import SubmitItem, SubmitResult, Submitter

__all__ = [
    "ApiError",
    "AsyncVlmRunClient",
    "AuthenticationError",
    "BadRequest",
    "ConfigError",
    "ImageError",
    "ImageSource",
    "NotFound",
    "RateLimited",
    "ReceiverClient",
    "ReconcileSummary",
    "RetryPolicy",
    "ServerError",
    "SubmitError",
    "SubmitItem",
    "SubmitResult",
    "Submitter",
    "TransportError",
    "VlmRunClient",
    "expand_image_inputs",
    "parse_duration",
    "reconcile_once",
]

"""The core's exception tree. Problems carry the HTTP answer a caller gets; configuration
errors never reach HTTP (they stop start-up with one line).

VlmhooksError                          root; `detail` plus keyword context in `extra`
├── ConfigError                        unusable setting; the message names the variable
└── ProblemError                       something a caller caused; `status` is its answer
    ├── VerificationError        401
    │   ├── TokenInvalid               tampered, unknown key, malformed
    │   │   └── TokenExpired           older than the max age; final
    │   └── SignatureInvalid           missing, wrong or malformed provider signature
    │       └── TimestampOutOfTolerance
    ├── PayloadError             400   the body or a parameter is unusable
    │   ├── PayloadTooLarge      413
    │   ├── UnsupportedMediaType 415
    │   ├── MalformedJSON        400
    │   └── ContractViolation    422   carries field errors
    ├── PredictionConflict       409   the body contradicts what is already bound
    │   └── WebhookIdConflict          a used Standard Webhooks id with another body
    ├── NotFound                 404
    └── StorageUnavailable       503   the database failed or did not answer in time; retry

The receiver adds its own leaves in `receiver/errors.py`.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ConfigError",
    "ContractViolation",
    "MalformedJSON",
    "NotFound",
    "PayloadError",
    "PayloadTooLarge",
    "PredictionConflict",
    "ProblemError",
    "SignatureInvalid",
    "StorageUnavailable",
    "TimestampOutOfTolerance",
    "TokenExpired",
    "TokenInvalid",
    "UnsupportedMediaType",
    "VerificationError",
    "VlmhooksError",
    "WebhookIdConflict",
]


class VlmhooksError(Exception):
    """Root of every error vlmhooks raises on purpose."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class ConfigError(VlmhooksError):
    """A setting is missing or unusable; the message names it. Start-up stops, no HTTP."""


class ProblemError(VlmhooksError):
    """A failure a caller caused (or must retry); maps to one RFC 9457 problem."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    type_slug: ClassVar[str] = "internal"
    # Seconds for the answer's `Retry-After` header; None: no header.
    retry_after: ClassVar[int | None] = None


class VerificationError(ProblemError):
    status = 401
    title = "Verification failed"
    type_slug = "verification-failed"


class TokenInvalid(VerificationError):
    title = "Invalid callback token"
    type_slug = "invalid-token"


class TokenExpired(TokenInvalid):
    title = "Expired callback token"
    type_slug = "expired-token"


class SignatureInvalid(VerificationError):
    title = "Invalid signature"
    type_slug = "invalid-signature"


class TimestampOutOfTolerance(SignatureInvalid):
    title = "Signature timestamp out of tolerance"
    type_slug = "timestamp-out-of-tolerance"


class PayloadError(ProblemError):
    status = 400
    title = "Bad request"
    type_slug = "bad-request"


class PayloadTooLarge(PayloadError):
    status = 413
    title = "Payload too large"
    type_slug = "payload-too-large"


class UnsupportedMediaType(PayloadError):
    status = 415
    title = "Unsupported media type"
    type_slug = "unsupported-media-type"


class MalformedJSON(PayloadError):
    status = 400
    title = "Malformed JSON"
    type_slug = "malformed-json"


class ContractViolation(PayloadError):
    status = 422
    title = "Contract violation"
    type_slug = "contract-violation"


class PredictionConflict(ProblemError):
    status = 409
    title = "Prediction conflict"
    type_slug = "prediction-conflict"


class WebhookIdConflict(PredictionConflict):
    title = "Webhook id reused"
    type_slug = "webhook-id-conflict"


class NotFound(ProblemError):
    status = 404
    title = "Not found"
    type_slug = "not-found"


class StorageUnavailable(ProblemError):
    """503 with Retry-After: the database failed, or did not answer within
    VLMHOOKS_DB_TIMEOUT; nothing was acknowledged, the caller retries."""

    status = 503
    title = "Storage unavailable"
    type_slug = "storage-unavailable"
    retry_after = 5

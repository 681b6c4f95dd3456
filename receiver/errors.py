"""The receiver's exception tree; every failure a caller can cause maps to one HTTP problem.

ReceiverError
├── ConfigError                    start-up refused (never reaches HTTP)
├── VerificationError       401
│   ├── TokenInvalid               tampered, unknown key, malformed
│   │   └── TokenExpired           older than the max age; final
│   └── SignatureInvalid           missing, wrong or malformed provider signature
│       └── TimestampOutOfTolerance
├── AuthError               401    lookup API bearer key
└── PayloadError
    ├── PayloadTooLarge     413
    ├── UnsupportedMediaType 415
    ├── MalformedJSON       400
    ├── ContractViolation   422    carries field errors
    ├── PredictionConflict  409
    └── NotFound            404
"""

from __future__ import annotations

from typing import Any, ClassVar


class ReceiverError(Exception):
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    type_slug: ClassVar[str] = "internal"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class ConfigError(ReceiverError):
    title = "Configuration error"
    type_slug = "config"


class VerificationError(ReceiverError):
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


class AuthError(ReceiverError):
    status = 401
    title = "Unauthorized"
    type_slug = "unauthorized"


class PayloadError(ReceiverError):
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


class PredictionConflict(PayloadError):
    status = 409
    title = "Prediction conflict"
    type_slug = "prediction-conflict"


class NotFound(PayloadError):
    status = 404
    title = "Not found"
    type_slug = "not-found"

"""The web service's own problems, leaves of the core tree in `vlmhooks/errors.py`.

ProblemError (vlmhooks.errors)
├── AuthError                    401   the lookup API's bearer key is missing or wrong
│   └── SessionInvalid                 the dashboard's session cookie expired or is forged
├── CrossSiteForm                403   a dashboard form (or replay) was posted from another site
├── MintingDisabled              403   no API keys: callback URLs are not handed out anonymously
├── ReplayDisabled               403   no API keys: stored data is never rewritten anonymously
├── PayloadError (vlmhooks)
│   └── InvalidRequest           422   a request body (not a callback) breaks its schema
├── PayloadTooLarge (vlmhooks)
│   └── BodyTooLarge             413   keeps the bytes read before stopping, for the audit log
├── FetchBackFailed              502   the API could not confirm a called-back prediction
├── ReadThroughFailed            502   the API answered a read-through with an error or nonsense
├── ReadThroughUnavailable       503   the API did not answer in time; read-throughs rate-limited
└── CallbacksBusy                503   no room in the callback byte budget in time
"""

from __future__ import annotations

from vlmhooks.errors import PayloadError, PayloadTooLarge, ProblemError

__all__ = [
    "AuthError",
    "BodyTooLarge",
    "CallbacksBusy",
    "CrossSiteForm",
    "FetchBackFailed",
    "InvalidRequest",
    "MintingDisabled",
    "ReadThroughFailed",
    "ReadThroughUnavailable",
    "ReplayDisabled",
    "SessionInvalid",
]


class AuthError(ProblemError):
    status = 401
    title = "Unauthorized"
    type_slug = "unauthorized"


class SessionInvalid(AuthError):
    """401; `reason` (`expired`, `invalid`) lets the sign-in form say why it is shown."""

    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason


class CrossSiteForm(ProblemError):
    """403: a dashboard post (sign-in, sign-out, replay) came from another site's page."""

    status = 403
    title = "Forbidden"
    type_slug = "cross-site-form"


class BodyTooLarge(PayloadTooLarge):
    """413; `head` keeps the bytes read before stopping (at most the cap) for the audit log."""

    def __init__(self, detail: str, *, head: bytes, limit: int) -> None:
        super().__init__(detail, limit=limit)
        self.head = head


class FetchBackFailed(ProblemError):
    """502: the API could not confirm the prediction; the sender is told to retry."""

    status = 502
    title = "Fetch-back failed"
    type_slug = "fetch-back-failed"


class ReadThroughFailed(ProblemError):
    """502: asked for a prediction not stored, the API answered with an error or nonsense."""

    status = 502
    title = "Read-through failed"
    type_slug = "read-through-failed"


class ReadThroughUnavailable(ProblemError):
    """503: the API did not answer in time, or this process's read-through budget is spent."""

    status = 503
    title = "Service Unavailable"
    type_slug = "read-through-unavailable"


class MintingDisabled(ProblemError):
    """403: a callback URL is a credential to post callbacks; anonymous reads do not hand
    them out."""

    status = 403
    title = "Forbidden"
    type_slug = "minting-disabled"


class ReplayDisabled(ProblemError):
    """403: replay rewrites stored data; anonymous reads do not open it (API and dashboard)."""

    status = 403
    title = "Forbidden"
    type_slug = "forbidden"


class InvalidRequest(PayloadError):
    """422 with `errors: [{field, message}]`, like a callback that breaks the contract."""

    status = 422
    title = "Invalid request"
    type_slug = "invalid-request"


class CallbacksBusy(ProblemError):
    """503 with Retry-After: the callback byte budget stayed full (receiver/ingest/slots.py)."""

    status = 503
    title = "Service Unavailable"
    type_slug = "busy"

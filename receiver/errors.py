"""The web service's own problems, leaves of the core tree in `vlmhooks/errors.py`.

ProblemError (vlmhooks.errors)
├── AuthError                    401   the lookup API's bearer key is missing or wrong
├── PayloadTooLarge (vlmhooks)
│   └── BodyTooLarge             413   keeps the bytes read before stopping, for the audit log
├── FetchBackFailed              502   the API could not confirm a called-back prediction
└── CallbacksBusy                503   no room in the callback byte budget in time
"""

from __future__ import annotations

from vlmhooks.errors import PayloadTooLarge, ProblemError

__all__ = ["AuthError", "BodyTooLarge", "CallbacksBusy", "FetchBackFailed"]


class AuthError(ProblemError):
    status = 401
    title = "Unauthorized"
    type_slug = "unauthorized"


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


class CallbacksBusy(ProblemError):
    """503 with Retry-After: the callback byte budget stayed full (receiver/callback_slots.py)."""

    status = 503
    title = "Service Unavailable"
    type_slug = "busy"

"""Dashboard sign-in sessions: an itsdangerous-signed, expiring cookie that names (by
fingerprint, never by value) the API key a browser signed in with.

Signed with the callback-token keys under their own salt, so the keys rotate together
(oldest to newest, the newest signs). Naming the key means that dropping a key from
VLMHOOKS_API_KEYS also ends every session opened with it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Literal

from itsdangerous import BadData, SignatureExpired
from starlette.requests import Request

from vlmhooks.trust.tokens import clocked_serializer

__all__ = [
    "SESSIONS_STATE_KEY",
    "SESSION_COOKIE",
    "SESSION_PATH",
    "DashboardSessions",
    "SessionVerdict",
    "dashboard_sessions",
]

SESSION_COOKIE = "vlmhooks_session"
# The cookie goes to the dashboard's own routes only, never to the API or callbacks.
SESSION_PATH = "/dashboard"
_SALT = "vlmhooks.dashboard-session"
_FINGERPRINT_KEY = "key"

SessionVerdict = Literal["valid", "expired", "invalid"]

# The lifespan state key of the console's sessions: a key of the feature's own, so the core
# state (receiver/state.py) knows nothing of the console (ARCHITECTURE.md, "Layers").
SESSIONS_STATE_KEY = "dashboard_sessions"


def _fingerprint(api_key: str) -> str:
    return hashlib.sha256(f"{_SALT}\x00{api_key}".encode()).hexdigest()[:32]


class DashboardSessions:
    """Issue and check session cookies for a fixed set of API keys."""

    def __init__(
        self,
        secret_keys: Sequence[str],
        api_keys: Sequence[str],
        *,
        max_age_seconds: int,
        clock: Callable[[], float],
    ) -> None:
        self.max_age = max_age_seconds
        self._api_keys = tuple(api_keys)
        self._fingerprints = frozenset(_fingerprint(key) for key in api_keys)
        self._serializer = clocked_serializer(secret_keys, salt=_SALT, clock=clock)

    def sign_in(self, presented: str) -> str | None:
        """A cookie value when `presented` is one of the keys, else None."""
        candidate = presented.encode("utf-8")
        # Every key is compared, so the time taken does not tell which one (if any) matched.
        matches = [hmac.compare_digest(candidate, key.encode("utf-8")) for key in self._api_keys]
        for key, matched in zip(self._api_keys, matches, strict=True):
            if matched:
                return str(self._serializer.dumps({_FINGERPRINT_KEY: _fingerprint(key)}))
        return None

    def verify(self, cookie: str) -> SessionVerdict:
        try:
            payload = self._serializer.loads(cookie, max_age=self.max_age)
        except SignatureExpired:
            return "expired"
        except BadData:
            return "invalid"
        if isinstance(payload, dict) and payload.get(_FINGERPRINT_KEY) in self._fingerprints:
            return "valid"
        return "invalid"


def dashboard_sessions(request: Request) -> DashboardSessions:
    """The sessions the lifespan built for this app."""
    sessions = request.scope["state"][SESSIONS_STATE_KEY]
    assert isinstance(sessions, DashboardSessions)
    return sessions

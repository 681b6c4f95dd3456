"""Keep secrets out of log lines: callback tokens in paths, `access_token` in queries.

uvicorn's access log writes the request target as received; a callback URL carries its
token in the path and a browser's EventSource its API key in `?access_token=`. A filter on
uvicorn's loggers rewrites both before any handler formats the record.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

from receiver.http.auth import ACCESS_TOKEN_PARAM
from vlmhooks.trust.tokens import CALLBACK_PATH_PREFIX

__all__ = ["REDACTED", "RedactSecrets", "install_redaction", "redact_target"]

REDACTED = "[redacted]"
REDACTED_LOGGERS = ("uvicorn.access", "uvicorn.error")
_CALLBACK_TOKEN = re.compile(re.escape(CALLBACK_PATH_PREFIX) + r"[^/?#\s\"']+")


def _redact_query(query: str) -> str:
    parts = query.split("&")
    for index, part in enumerate(parts):
        name, equals, _value = part.partition("=")
        # parse_qsl (receiver/http/auth.py) decodes names, so `access%5Ftoken=` is a key too.
        if equals and unquote_plus(name) == ACCESS_TOKEN_PARAM:
            parts[index] = f"{name}={REDACTED}"
    return "&".join(parts)


def redact_target(text: str) -> str:
    """`text` with every callback token and `access_token` value replaced by `[redacted]`."""
    text = _CALLBACK_TOKEN.sub(CALLBACK_PATH_PREFIX + REDACTED, text)
    if "?" not in text:
        return text
    path, _, query = text.partition("?")
    # The query ends at the first blank: the rest of a log line is not part of it.
    query, blank, rest = query.partition(" ")
    return f"{path}?{_redact_query(query)}{blank}{rest}"


class RedactSecrets(logging.Filter):
    """Rewrites the string arguments (uvicorn passes the target as one) and the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_target(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = redact_target(record.msg)
        return True


def install_redaction() -> None:
    """Attach the filter to uvicorn's loggers once per process (idempotent)."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactSecrets) for existing in logger.filters):
            logger.addFilter(RedactSecrets())

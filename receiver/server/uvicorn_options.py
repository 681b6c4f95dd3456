"""How `vlm-receiver serve` configures uvicorn: limits, timeouts, proxies (README, "Limits").

One function, so the tests run the server exactly as the command does.
"""

from __future__ import annotations

from typing import Any

from receiver.server.protocol import HttpLimits, LimitedHttpProtocol, limited_protocol
from vlmhooks.settings import Settings

__all__ = ["GRACEFUL_SHUTDOWN_SECONDS", "PROTOCOL_PATH", "uvicorn_options"]

# SSE streams and long polls are told to finish when shutdown starts (receiver/server/protocol.py);
# this bounds whatever is still running after that.
GRACEFUL_SHUTDOWN_SECONDS = 10
# By import path: uvicorn's worker processes import the class and read the environment.
PROTOCOL_PATH = f"{LimitedHttpProtocol.__module__}:{LimitedHttpProtocol.__name__}"


def uvicorn_options(settings: Settings, *, in_process: bool = False) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` / `uvicorn.Config`.

    `in_process` binds the protocol to `settings` directly (one server in this process, as
    in tests) instead of letting each worker read the environment.
    """
    protocol: Any = (
        limited_protocol(HttpLimits.from_settings(settings)) if in_process else PROTOCOL_PATH
    )
    return {
        "http": protocol,
        "limit_concurrency": settings.max_connections,
        "backlog": settings.backlog,
        "timeout_keep_alive": settings.keepalive_timeout,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        # X-Forwarded-For / -Proto are believed only from these peers; anyone else could
        # claim any client address (and https) for themselves.
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
    }

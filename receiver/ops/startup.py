"""What `vlm-receiver serve` settles before uvicorn starts: the schema (or migrating it for a
local run), the strength of the signing keys, and whether the port is free.

Each problem is one line (a `ConfigError`), never a traceback from inside uvicorn.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from vlmhooks.errors import ConfigError
from vlmhooks.settings import Settings

__all__ = [
    "MIN_SECRET_KEY_BYTES",
    "ensure_port_free",
    "migrate_to_head",
    "missing_sqlite_file",
    "short_secret_key_warnings",
]

# An HMAC key should carry as many bits as the digest it keys (SHA-256 here, via
# itsdangerous' default); fewer makes guessing the key the cheapest forgery.
MIN_SECRET_KEY_BYTES = 32


def missing_sqlite_file(database_url: str) -> Path | None:
    """The file of a file-backed SQLite URL that connecting would create, else None.

    Checked before connecting: SQLite creates a missing file on connect, and `serve` before
    `db upgrade` used to leave an empty database behind that looked like a real one. (In a
    missing directory nothing is created: the driver's own error says it better.)
    """
    from sqlalchemy.engine import make_url

    from vlmhooks.store.db import normalize_database_url, sqlite_file

    url = make_url(normalize_database_url(database_url))
    # ":memory:", "" and file: URIs (mode=memory and friends) are not plain files.
    database = sqlite_file(url.database) if url.get_backend_name() == "sqlite" else None
    if database is None:
        return None
    path = Path(database)
    return path if not path.exists() and path.parent.is_dir() else None


def migrate_to_head(settings: Settings) -> str | None:
    """`db upgrade` inside `serve --migrate`; the revision reached."""
    from vlmhooks.store import migrate
    from vlmhooks.store.db import make_engine

    engine = make_engine(settings.database_url, pool_size=1, pooler=settings.db_pooler)
    try:
        migrate.upgrade(engine, "head")
        return migrate.current_revision(engine)
    finally:
        engine.dispose()


def short_secret_key_warnings(settings: Settings) -> list[str]:
    """One line per callback-token key shorter than `MIN_SECRET_KEY_BYTES`, naming the
    variable and the key's position (never the key)."""
    keys = [key.get_secret_value() for key in settings.secret_keys]
    return [
        f"VLMHOOKS_SECRET_KEYS: key {index} of {len(keys)} is {size} bytes; use at least "
        f"{MIN_SECRET_KEY_BYTES} random bytes (python -c 'import secrets; "
        "print(secrets.token_urlsafe(32))')"
        for index, size in enumerate((len(key.encode()) for key in keys), start=1)
        if size < MIN_SECRET_KEY_BYTES
    ]


def ensure_port_free(host: str, port: int) -> None:
    """A `ConfigError` when nothing could listen on host:port (in use, not allowed).

    uvicorn would log the bind error and exit; this says it in our one line, with what to do.
    The listener is closed again at once, and uvicorn binds with SO_REUSEADDR as this does.
    """
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is already in use (another receiver?): stop it, or "
                "choose another port with --port or $PORT"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None

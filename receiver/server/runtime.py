"""Where the receiver runs: a long-lived server, or one function invocation at a time
(serverless), directly on the database or behind a transaction-mode connection pooler.

The answer decides the engines, whether the group committer has a thread, whether WAL
checkpoints run in the background, and whether readers are woken by LISTEN/NOTIFY or by
polling; `create_app` asks here once.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import URL, Engine

from receiver.writer.wal_checkpoints import WRITER_AUTOCHECKPOINT_PAGES, WalCheckpointer
from vlmhooks.errors import ConfigError
from vlmhooks.settings import Settings
from vlmhooks.store.db import make_engine, sqlite_file

__all__ = ["Runtime", "open_engines", "resolve_runtime", "wal_checkpointer"]

SERVER_POOL_SIZE = 8
# One invocation at a time per function instance: a read and the write never overlap, and
# thousands of instances must not each hold a handful of connections to the pooler.
SERVERLESS_POOL_SIZE = 1


@dataclass(frozen=True)
class Runtime:
    serverless: bool
    pooler: str  # "none", "session" or "transaction" (VLMHOOKS_DB_POOLER)

    @property
    def listens(self) -> bool:
        """Whether a LISTEN connection may wake readers.

        A serverless instance is frozen between invocations, so a listener task would
        outlive its invocation; a transaction-mode pooler hands each transaction to any
        server connection, so a LISTEN there hears nothing. Both poll instead.
        """
        return not self.serverless and self.pooler != "transaction"


def resolve_runtime(settings: Settings) -> Runtime:
    """Serverless when forced (`VLMHOOKS_SERVERLESS`) or inside AWS Lambda; checked here."""
    serverless = settings.serverless
    if serverless is None:
        serverless = bool(settings.aws_lambda_function_name)
    if serverless and _is_sqlite(settings.database_url) and not settings.serverless_allow_sqlite:
        raise ConfigError(
            "serverless mode needs PostgreSQL (DATABASE_URL is SQLite, whose file a function "
            "instance does not keep); set VLMHOOKS_SERVERLESS_ALLOW_SQLITE=true only for a "
            "SQLite file on a mounted volume shared by every instance"
        )
    return Runtime(serverless=serverless, pooler=settings.db_pooler)


def open_engines(settings: Settings, runtime: Runtime) -> tuple[Engine, Engine]:
    """The read engine and the write engine (the same one where a second buys nothing)."""
    url = settings.database_url
    pool_size = SERVERLESS_POOL_SIZE if runtime.serverless else SERVER_POOL_SIZE
    timeout = settings.db_timeout
    engine = make_engine(url, pool_size=pool_size, pooler=runtime.pooler, timeout=timeout)
    if runtime.serverless and not _is_sqlite(url):
        return engine, engine
    # One connection is all the writer needs; BEGIN IMMEDIATE makes writers in other
    # processes queue on SQLite's busy timeout rather than fail.
    write_engine = make_engine(
        url,
        pool_size=1,
        immediate_writes=True,
        pooler=runtime.pooler,
        timeout=timeout,
        # Where a thread checkpoints in the background, the writer only rarely does
        # (receiver/writer/wal_checkpoints.py).
        wal_autocheckpoint=(
            WRITER_AUTOCHECKPOINT_PAGES if _checkpointed_file(engine.url, runtime) else None
        ),
    )
    return engine, write_engine


def wal_checkpointer(write_engine: Engine, runtime: Runtime) -> WalCheckpointer | None:
    """The background checkpointer for a served SQLite file (`open_engines`'s write engine
    leaves it the WAL); None for PostgreSQL, in-memory SQLite and serverless."""
    database = _checkpointed_file(write_engine.url, runtime)
    return None if database is None else WalCheckpointer(database)


def _checkpointed_file(url: URL, runtime: Runtime) -> str | None:
    if runtime.serverless or url.get_backend_name() != "sqlite":
        return None
    return sqlite_file(url.database)


def _is_sqlite(url: str) -> bool:
    return url.strip().startswith("sqlite")

"""Shared fixtures: real SQLite files, the real PostgreSQL server, and uvicorn on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy.engine import Engine

from tests.databases import DatabasePool
from tests.pgbouncer import PgBouncer, PgBouncerError, start_pgbouncer
from vlmhooks.store import migrate
from vlmhooks.store.db import make_engine

# Property-based tests are derandomized: the same cases on every run, so the README's test
# command cannot fail at random. `HYPOTHESIS_PROFILE=explore` searches afresh by hand.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

POSTGRES_ADMIN_DSN = os.environ.get(
    "VLMHOOKS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# Per session, so concurrent pytest runs against one server never drop each other's template.
TEMPLATE_DB = f"vlmhooks_test_template_{uuid.uuid4().hex[:8]}"


def _postgres_reachable() -> bool:
    try:
        with psycopg.connect(POSTGRES_ADMIN_DSN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _start_postgres() -> None:
    """The test setup starts the local cluster when it is down (CI does not skip PG tests)."""
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        return
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        check=False,
        capture_output=True,
    )
    for _ in range(60):
        if _postgres_reachable():
            return
        time.sleep(0.5)


def _admin(sql: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def _dsn_for(database: str) -> str:
    base, _, _ = POSTGRES_ADMIN_DSN.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated template database; each test clones it (CREATE DATABASE ... TEMPLATE)."""
    if not _postgres_reachable():
        _start_postgres()
    if not _postgres_reachable():
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN} and could not be started")
    _admin(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
    _admin(f"CREATE DATABASE {TEMPLATE_DB}")
    engine = make_engine(_dsn_for(TEMPLATE_DB))
    migrate.upgrade(engine)
    engine.dispose()
    yield TEMPLATE_DB
    _admin(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")


@pytest.fixture(scope="session")
def postgres_pool(postgres_template: str) -> Iterator[DatabasePool]:
    """This process's databases cloned from the template, emptied and reused between tests."""
    pool = DatabasePool(postgres_template, _dsn_for, POSTGRES_ADMIN_DSN)
    yield pool
    pool.close()


@pytest.fixture
def postgres_url(postgres_pool: DatabasePool) -> Iterator[str]:
    """A migrated PostgreSQL database for one test, empty as the template and no one else's:
    a clone of the template, or one a finished test left as the template was (tests/databases.py).
    """
    name = postgres_pool.take()
    yield _dsn_for(name)
    postgres_pool.give_back(name)


@pytest.fixture(scope="session")
def pgbouncer(postgres_template: str) -> Iterator[PgBouncer]:
    """A real PgBouncer in transaction mode in front of the test server; fails, never skips."""
    server = urlsplit(POSTGRES_ADMIN_DSN)
    try:
        bouncer = start_pgbouncer(
            server.hostname or "127.0.0.1", server.port or 5432, server.username or "postgres"
        )
    except PgBouncerError as exc:
        pytest.fail(str(exc))
    yield bouncer
    bouncer.stop()


@pytest.fixture
def pooled_postgres_url(
    postgres_url: str, pgbouncer: PgBouncer, postgres_pool: DatabasePool
) -> str:
    """This test's PostgreSQL database, reached through PgBouncer (transaction mode)."""
    name = postgres_url.rpartition("/")[2]
    postgres_pool.spoil(name)  # PgBouncer keeps server connections to it
    return pgbouncer.url(name)


@pytest.fixture
def empty_postgres_url(postgres_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database with no schema, for migration tests."""
    name = f"vlmhooks_test_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE DATABASE {name}")
    yield _dsn_for(name)
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh, migrated SQLite file for one test."""
    url = f"sqlite:///{tmp_path / 'vlmhooks.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once on a SQLite file and once on PostgreSQL."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        return str(request.getfixturevalue("postgres_url"))
    return str(request.getfixturevalue("sqlite_url"))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _sigint_disabled() -> str | None:
    """How SIGINT is disabled in this process and thread, as the kernel sees it, or None.

    An ignored SIGINT is inherited across exec, and so is a blocked one from the thread that
    starts a child: a child CLI would then never see Ctrl-C. The kernel's view also catches
    a disposition set outside Python's `signal` module (`signal.getsignal` would not).
    """
    with open("/proc/thread-self/status") as status:
        fields = dict(line.split(":\t", 1) for line in status if ":\t" in line)
    bit = 1 << (signal.SIGINT - 1)
    if int(fields["SigIgn"], 16) & bit:
        return "ignored"
    if int(fields["SigBlk"], 16) & bit:
        return "blocked"
    return None


@pytest.fixture(autouse=True)
def _sigint_left_as_found(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test must not leave SIGINT ignored or blocked: the child processes of every later
    test in this worker would inherit it (`vlm-sandbox serve` ending 0 on Ctrl-C instead of
    130, `reconcile --every` never stopping). Restored here, and the test that did it fails.
    (One inherited from whatever started pytest, e.g. `pytest &` in a script, is restored.)
    """
    if _sigint_disabled() is not None:
        _restore_sigint()
    yield
    after = _sigint_disabled()
    if after is not None:
        _restore_sigint()
        pytest.fail(f"{request.node.nodeid} left SIGINT {after} in this process")


def _restore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

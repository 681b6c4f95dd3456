"""`vlm-receiver`: serve the app, manage the schema, mint callback URLs, replay and prune
deliveries (`cli_deliveries.py`), check a deployment end to end (`check.py`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from vlmhooks.cli_args import port_number, positive_int
from vlmhooks.errors import ConfigError, VlmhooksError
from vlmhooks.settings import Settings, load_settings


def _cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from vlmhooks.store import migrate
    from vlmhooks.store.db import make_engine

    engine = make_engine(settings.database_url, pool_size=1, pooler=settings.db_pooler)
    try:
        if args.db_command == "upgrade":
            migrate.upgrade(engine, args.revision)
        elif args.db_command == "downgrade":
            migrate.downgrade(engine, args.revision)
        print(f"database at revision {migrate.current_revision(engine) or 'base'}")
    finally:
        engine.dispose()
    return 0


def _require_schema(settings: Settings) -> None:
    """Refuse to serve a database with no schema: every callback would fail with a 500."""
    from receiver.ops.startup import missing_sqlite_file
    from vlmhooks.store import migrate
    from vlmhooks.store.db import make_engine

    if missing_sqlite_file(settings.database_url) is not None:
        # Connecting would create the file: refuse before, so no empty database is left.
        raise ConfigError(
            "the SQLite database file does not exist yet: run `vlm-receiver db upgrade` first "
            "(or `vlm-receiver serve --migrate` for a local run)"
        )

    engine = make_engine(settings.database_url, pool_size=1, pooler=settings.db_pooler)
    try:
        current = migrate.current_revision(engine)
    finally:
        engine.dispose()
    if current is None:
        raise ConfigError("the database has no schema yet: run `vlm-receiver db upgrade` first")
    head = migrate.head_revision()
    if current != head:
        # Not fatal: during a rolling deploy the release phase may be ahead of this code.
        print(
            f"vlm-receiver: warning: database at revision {current}, this code expects {head}",
            file=sys.stderr,
        )


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from receiver.ops import startup
    from receiver.server.runtime import resolve_runtime
    from receiver.server.uvicorn_options import uvicorn_options
    from vlmhooks.forward.runtime import Forwarding

    # Fail here, with one line, rather than inside each worker's lifespan.
    settings.require_secret_keys()
    settings.require_lookup_auth()
    resolve_runtime(settings)  # e.g. VLMHOOKS_SERVERLESS=true on SQLite
    if args.migrate:
        print(f"database at revision {startup.migrate_to_head(settings) or 'base'}")
    Forwarding(settings)  # a malformed VLMHOOKS_FORWARD_TO is one line here, not per worker
    _require_schema(settings)
    workers = args.workers or settings.web_concurrency
    port = args.port if args.port is not None else settings.port
    startup.ensure_port_free(args.host, port)
    # Warned once everything else is settled, so a refusal above stays one line.
    for warning in startup.short_secret_key_warnings(settings):
        print(f"vlm-receiver: warning: {warning}", file=sys.stderr)
    uvicorn.run(
        "receiver.app:create_app_from_environment",
        factory=True,
        host=args.host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        access_log=args.access_log,
        **uvicorn_options(settings),
    )
    return 0


def _cmd_forward(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from receiver.ops.relay_process import run_forward

    _require_schema(settings)
    asyncio.run(run_forward(settings, metrics_port=args.metrics_port))
    return 0


def _cmd_callback_url(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.http.shapes import MAX_CALLBACK_URLS
    from vlmhooks.ingest.storable import MAX_SUBMISSION_ID_CHARS
    from vlmhooks.trust.tokens import CallbackTokens, mint_callback_urls

    tokens = CallbackTokens(settings.require_secret_keys(), max_age_seconds=settings.token_max_age)
    submission_id = args.submission_id
    if submission_id is not None and (
        not 1 <= len(submission_id) <= MAX_SUBMISSION_ID_CHARS or not submission_id.isprintable()
    ):
        raise ConfigError(
            f"--submission-id must be 1-{MAX_SUBMISSION_ID_CHARS} printable characters"
        )
    if not 1 <= args.count <= MAX_CALLBACK_URLS:
        raise ConfigError(f"--count must be 1-{MAX_CALLBACK_URLS}")
    if submission_id is not None and args.count != 1:
        raise ConfigError("--submission-id binds exactly one URL: drop --count or the id")
    public_url = args.public_url or settings.public_url
    for url, _ in mint_callback_urls(public_url, tokens, args.count, submission_id):
        print(url)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlm-receiver", description="Receive, verify and store VLM Run prediction callbacks."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the receiver (uvicorn)")
    serve.add_argument("--host", default="0.0.0.0", help="bind address (default 0.0.0.0)")
    serve.add_argument(
        "--port", type=port_number, default=None, help="port (default $PORT, else 8000)"
    )
    serve.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="processes (default $WEB_CONCURRENCY, else 1)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument(
        "--migrate",
        action="store_true",
        help="run `db upgrade` first (local runs: Procfile.dev; deploys migrate in `release`)",
    )
    serve.set_defaults(handler=_cmd_serve)

    forward = commands.add_parser(
        "forward", help="run only the forwarding relay (VLMHOOKS_FORWARD_TO), no web server"
    )
    forward.add_argument(
        "--metrics-port",
        type=port_number,
        default=None,
        help="serve Prometheus metrics on this port",
    )
    forward.set_defaults(handler=_cmd_forward)

    db = commands.add_parser("db", help="manage the database schema (Alembic)")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="migrate to a revision (default head)")
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = db_commands.add_parser("downgrade", help="migrate down to a revision")
    downgrade.add_argument("revision")
    db.set_defaults(handler=_cmd_db)

    callback_url = commands.add_parser(
        "callback-url", help="print signed callback URLs for requests sent by any client"
    )
    callback_url.add_argument("--submission-id", default=None, help="bind to this submission id")
    callback_url.add_argument(
        "--count", type=int, default=1, help="how many URLs, one per line (default 1)"
    )
    callback_url.add_argument(
        "--public-url", default=None, help="base URL (default $VLMHOOKS_PUBLIC_URL)"
    )
    callback_url.set_defaults(handler=_cmd_callback_url)

    # Each command group in its own module; this file stays the entry point.
    from receiver.ops.check import add_check_command
    from receiver.ops.cli_deliveries import add_deliveries_commands

    add_deliveries_commands(commands)
    add_check_command(commands)
    return parser


def database_error_line(database_url: str, exc: BaseException) -> str:
    """One line naming the database (password hidden) and the driver's first message line."""
    from sqlalchemy.engine import make_url

    from vlmhooks.store.db import normalize_database_url

    try:
        shown = make_url(normalize_database_url(database_url)).render_as_string(hide_password=True)
    except (VlmhooksError, ValueError):
        shown = "DATABASE_URL"
    cause = getattr(exc, "orig", None) or exc
    first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    return f"cannot use the database at {shown}: {first_line}"


def main(argv: Sequence[str] | None = None) -> int:
    from sqlalchemy.exc import DBAPIError

    args = build_parser().parse_args(argv)
    settings: Settings | None = None
    try:
        settings = load_settings()
        code: int = args.handler(args, settings)
        return code
    except VlmhooksError as exc:
        print(f"vlm-receiver: error: {exc.detail}", file=sys.stderr)
        return 2
    except DBAPIError as exc:
        # Unreachable server, wrong password, unwritable SQLite path: one line, no traceback.
        url = settings.database_url if settings is not None else ""
        print(f"vlm-receiver: error: {database_error_line(url, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

"""`vlm-receiver`: serve the app, manage the schema, mint callback URLs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from receiver.errors import ReceiverError
from receiver.settings import Settings, load_settings


def _cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from receiver import migrate
    from receiver.db import make_engine

    engine = make_engine(settings.database_url)
    try:
        if args.db_command == "upgrade":
            migrate.upgrade(engine, args.revision)
        elif args.db_command == "downgrade":
            migrate.downgrade(engine, args.revision)
        print(f"database at revision {migrate.current_revision(engine) or 'base'}")
    finally:
        engine.dispose()
    return 0


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    # Fail here, with one line, rather than inside a worker's lifespan.
    settings.require_secret_keys()
    settings.require_lookup_auth()
    workers = args.workers or settings.web_concurrency
    port = args.port if args.port is not None else settings.port
    uvicorn.run(
        "receiver.app:create_app_from_environment",
        factory=True,
        host=args.host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        proxy_headers=True,
        forwarded_allow_ips="*",
        access_log=args.access_log,
    )
    return 0


def _cmd_callback_url(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.tokens import CallbackTokens, mint_callback_url, new_submission_id

    tokens = CallbackTokens(settings.require_secret_keys(), max_age_seconds=settings.token_max_age)
    submission_id = args.submission_id or new_submission_id()
    print(mint_callback_url(args.public_url or settings.public_url, tokens, submission_id))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlm-receiver", description="Receive, verify and store VLM Run prediction callbacks."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the receiver (uvicorn)")
    serve.add_argument("--host", default="0.0.0.0", help="bind address (default 0.0.0.0)")
    serve.add_argument("--port", type=int, default=None, help="port (default $PORT, else 8000)")
    serve.add_argument(
        "--workers", type=int, default=None, help="processes (default $WEB_CONCURRENCY, else 1)"
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(handler=_cmd_serve)

    db = commands.add_parser("db", help="manage the database schema (Alembic)")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="migrate to a revision (default head)")
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = db_commands.add_parser("downgrade", help="migrate down to a revision")
    downgrade.add_argument("revision")
    db.set_defaults(handler=_cmd_db)

    callback_url = commands.add_parser(
        "callback-url", help="print a signed callback URL for a request sent by any client"
    )
    callback_url.add_argument("--submission-id", default=None, help="bind to this submission id")
    callback_url.add_argument(
        "--public-url", default=None, help="base URL (default $VLMHOOKS_PUBLIC_URL)"
    )
    callback_url.set_defaults(handler=_cmd_callback_url)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        code: int = args.handler(args, settings)
        return code
    except ReceiverError as exc:
        print(f"vlm-receiver: error: {exc.detail}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

"""`vlm-submit`: send images for prediction, look predictions up, heal missed callbacks.

Exit codes: 0 all done, 1 some requests or predictions failed, 2 a usage or configuration
problem (bad domain, unreadable file, missing or wrong key), 3 ``--wait`` ran out of time,
130 interrupted. A user's mistake is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import json
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from schemas.enums import Domain, Status
from submit.cli_list import add_list_command
from submit.client import VlmRunClient, client_from_settings
from submit.errors import (
    AuthenticationError,
    ConfigError,
    ImageError,
    NotFound,
    SubmitError,
    WaitTimeout,
)
from submit.images import expand_image_inputs
from submit.lookup import (
    RECEIVER_URL_ENV,
    DatabaseSource,
    configured_engine,
    describe_source,
    open_source,
    reading_source,
    require_tables,
    wait_for_predictions,
)
from submit.reconcile import parse_duration, reconcile_forever, reconcile_once
from submit.submitter import DEFAULT_CONCURRENCY, SubmitItem, SubmitResult, Submitter
from vlmhooks.cli_args import positive_int, positive_seconds, table_width
from vlmhooks.errors import VlmhooksError
from vlmhooks.settings import Settings, load_settings
from vlmhooks.store.db import make_engine
from vlmhooks.trust.tokens import CallbackTokens

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "build_parser",
    "main",
    "parse_domain",
    "read_json_schema",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130

DEFAULT_WAIT_TIMEOUT_SECONDS = 300.0


# -- vlm-submit images ---------------------------------------------------------------------


def _cmd_images(args: argparse.Namespace) -> int:
    domain = parse_domain(args.domain)
    json_schema = read_json_schema(args.json_schema) if args.json_schema else None
    settings = load_settings()
    # Expanding only stats and sniffs each file: a bad path fails here, before any request.
    items = [SubmitItem((source,)) for source in expand_image_inputs(args.inputs)]
    stderr = Console(stderr=True)
    with ExitStack() as stack:
        engine = configured_engine(settings, immediate_writes=True)
        if engine is not None:
            stack.callback(engine.dispose)
        client = stack.enter_context(client_from_settings(settings))
        tokens, public_url = _callback_config(args, settings, client, stderr)
        submitter = Submitter(
            client,
            domain=domain,
            prompt=args.prompt,
            json_schema=json_schema,
            batch=args.batch,
            engine=engine,
            tokens=tokens,
            public_url=public_url,
            concurrency=args.concurrency,
        )
        results = _submit_with_progress(submitter, items, stderr)
        bodies: dict[str, dict[str, Any]] = {}
        pending: list[str] = []
        if args.wait:
            source = stack.enter_context(
                open_source(settings, engine=engine, receiver_url=args.receiver_url, api=client)
            )
            waiting = [r.prediction_id for r in results if r.prediction_id and not _done(r)]
            with stderr.status(f"waiting for {len(waiting)} predictions ({source.name})"):
                outcome = wait_for_predictions(source, waiting, timeout=args.wait_timeout)
            bodies, pending = outcome.latest, outcome.pending
            results = [_with_latest(result, bodies) for result in results]
    _print_results(results, bodies, args.output)
    failed = [r for r in results if not r.ok or r.status == Status.FAILED.value]
    stderr.print(_summary_line(results, failed), highlight=False)
    if pending:
        raise WaitTimeout(
            f"{len(pending)} prediction(s) still not finished after {args.wait_timeout:g} s "
            f"(e.g. {pending[0]}); look them up later with `vlm-submit get ID`, and if a "
            "callback never arrives, `vlm-submit reconcile` polls the API for it",
            pending=tuple(pending),
        )
    return EXIT_FAILED if failed else EXIT_OK


def parse_domain(text: str) -> Domain:
    """The domain, or a ``ConfigError`` listing the valid ones (and the nearest match)."""
    try:
        return Domain(text)
    except ValueError:
        valid = [domain.value for domain in Domain]
        close = difflib.get_close_matches(text, valid, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise ConfigError(
            f"unknown domain {text!r}.{hint} Valid domains: {', '.join(valid)}"
        ) from None


def read_json_schema(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read --json-schema file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--json-schema file {path} is not UTF-8 text") from exc
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--json-schema file {path} is not valid JSON: {exc.msg} "
            f"(line {exc.lineno}, column {exc.colno})"
        ) from exc
    if not isinstance(schema, dict):
        raise ConfigError(f"--json-schema file {path} must hold a JSON object (a JSON Schema)")
    return schema


def _callback_config(
    args: argparse.Namespace, settings: Settings, client: VlmRunClient, stderr: Console
) -> tuple[CallbackTokens | None, str | None]:
    if not args.batch or args.no_callback:
        return None, None
    tokens = CallbackTokens(settings.require_secret_keys(), max_age_seconds=settings.token_max_age)
    if _is_loopback(settings.public_url) and not _is_loopback(client.base_url):
        stderr.print(
            f"warning: callbacks go to {settings.public_url}, which {client.base_url} cannot "
            "reach; set VLMHOOKS_PUBLIC_URL to the receiver's public address",
            highlight=False,
        )
    return tokens, settings.public_url


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _submit_with_progress(
    submitter: Submitter, items: Sequence[SubmitItem], stderr: Console
) -> list[SubmitResult]:
    results: list[SubmitResult] = []
    progress = Progress(
        TextColumn("submitting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )
    with progress:
        task = progress.add_task("submit", total=len(items), failed=0)
        failed = 0
        for result in submitter.submit(items):
            results.append(result)
            failed += not result.ok
            progress.update(task, advance=1, failed=failed)
    return sorted(results, key=lambda result: result.index)


def _done(result: SubmitResult) -> bool:
    return result.status is not None and Status(result.status).is_terminal


def _with_latest(result: SubmitResult, bodies: dict[str, dict[str, Any]]) -> SubmitResult:
    body = bodies.get(result.prediction_id or "")
    return result if body is None else replace(result, status=str(body.get("status")))


def _print_results(
    results: Sequence[SubmitResult], bodies: dict[str, dict[str, Any]], output: str
) -> None:
    if output == "jsonl":
        for result in results:
            print(json.dumps(_result_json(result, bodies), default=str))
        return
    table = Table("image", "submission", "prediction", "status", "error")
    for column in table.columns[:3]:
        column.overflow = "fold"  # ids are for copying: wrap them, never cut them
    for result in results:
        table.add_row(
            result.label,
            result.submission_id,
            result.prediction_id or "-",
            result.status or "-",
            result.error or "",
        )
    Console(width=table_width()).print(table)


def _result_json(result: SubmitResult, bodies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    body = bodies.get(result.prediction_id or "")
    if body is None and result.prediction is not None:
        body = result.prediction.to_wire()
    return {
        "image": result.label,
        "submission_id": result.submission_id,
        "request_id": result.request_id or None,
        "prediction_id": result.prediction_id,
        "status": result.status,
        "error": result.error,
        "response": None if body is None else body.get("response"),
    }


def _summary_line(results: Sequence[SubmitResult], failed: Sequence[SubmitResult]) -> str:
    counts: dict[str, int] = {}
    for result in results:
        if result.ok and result.status:
            counts[result.status] = counts.get(result.status, 0) + 1
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    return f"{len(results)} submitted: {statuses or 'none sent'}; {len(failed)} failed"


# -- vlm-submit get ------------------------------------------------------------------------


def _cmd_get(args: argparse.Namespace) -> int:
    with reading_source(load_settings(), args.receiver_url) as source:
        print(f"vlm-submit: {describe_source(source)}", file=sys.stderr)
        # The database also knows submissions: a submission id is answered too.
        if isinstance(source, DatabaseSource):
            body = source.find(args.id)
        else:
            body = source.prediction(args.id)
    if body is None:
        raise NotFound(f"no prediction or submission {args.id!r} is stored yet")
    print(json.dumps(body, indent=2, default=str))
    return EXIT_OK


# -- vlm-submit reconcile ------------------------------------------------------------------


def _cmd_reconcile(args: argparse.Namespace) -> int:
    older_than = _duration_arg(args.older_than, "--older-than")
    every = _duration_arg(args.every, "--every").total_seconds() if args.every else None
    settings = load_settings()
    # Reconcile needs a database; the default SQLite file is the receiver's default too.
    engine = make_engine(settings.database_url, immediate_writes=True)
    try:
        require_tables(engine)
        with client_from_settings(settings) as client:
            if every is None:
                summary = reconcile_once(engine, client, older_than=older_than)
                print(f"reconcile: {summary}")
                for message in summary.error_messages:
                    print(f"  {message}", file=sys.stderr)
                return EXIT_FAILED if summary.errors else EXIT_OK
            _stop_on_sigterm()
            try:
                reconcile_forever(
                    engine,
                    client,
                    every=every,
                    older_than=older_than,
                    on_pass=lambda summary: print(f"reconcile: {summary}", flush=True),
                )
            except KeyboardInterrupt:
                print("reconcile: stopped", file=sys.stderr)
            return EXIT_OK
    finally:
        engine.dispose()


def _duration_arg(text: str, option: str) -> timedelta:
    try:
        duration = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from None
    if duration.total_seconds() <= 0 and option == "--every":
        raise ConfigError("--every must be more than 0 seconds")
    return duration


def _stop_on_sigterm() -> None:
    # Heroku and honcho stop a worker with SIGTERM: end the loop as cleanly as Ctrl-C does.
    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


# -- the command line ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlm-submit",
        description="Send images to the VLM Run API with signed callback URLs, look "
        "predictions up, and heal callbacks that never arrived.",
        epilog="Configuration: VLMRUN_API_KEY, VLMRUN_BASE_URL, DATABASE_URL, "
        "VLMHOOKS_SECRET_KEYS, VLMHOOKS_PUBLIC_URL, VLMHOOKS_RECEIVER_URL, VLMHOOKS_API_KEY.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    images = commands.add_parser("images", help="submit images (one request per image)")
    images.add_argument("inputs", nargs="+", metavar="PATH_OR_URL", help="files, dirs, URLs")
    images.add_argument("--domain", required=True, help="e.g. document.invoice, image.caption")
    images.add_argument("--prompt", default=None, help="instructions for the model")
    images.add_argument("--json-schema", default=None, metavar="FILE", help="response schema")
    mode = images.add_mutually_exclusive_group()
    mode.add_argument(
        "--batch", dest="batch", action="store_true", default=True, help="async (default)"
    )
    mode.add_argument("--sync", dest="batch", action="store_false", help="wait for each answer")
    images.add_argument(
        "--no-callback", action="store_true", help="send no callback_url (poll instead)"
    )
    images.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"requests in flight (default {DEFAULT_CONCURRENCY})",
    )
    images.add_argument(
        "--wait", action="store_true", help="block until every prediction is finished"
    )
    images.add_argument(
        "--wait-timeout",
        type=positive_seconds,
        default=DEFAULT_WAIT_TIMEOUT_SECONDS,
        metavar="S",
        help=f"give up waiting after S seconds (default {DEFAULT_WAIT_TIMEOUT_SECONDS:g})",
    )
    images.add_argument("--output", choices=("table", "jsonl"), default="table")
    images.add_argument("--receiver-url", default=None, help=f"default ${RECEIVER_URL_ENV}")
    images.set_defaults(handler=_cmd_images)

    get = commands.add_parser("get", help="show one prediction (or submission) by id")
    get.add_argument("id", metavar="ID")
    get.add_argument(
        "--receiver-url",
        default=None,
        help=f"read from this receiver (beats DATABASE_URL; default ${RECEIVER_URL_ENV})",
    )
    get.set_defaults(handler=_cmd_get)
    add_list_command(commands)

    reconcile = commands.add_parser("reconcile", help="poll the API for missed callbacks")
    reconcile.add_argument("--older-than", default="10m", help="only submissions older (10m)")
    reconcile.add_argument("--every", default=None, help="repeat every N seconds (or 1m...)")
    reconcile.set_defaults(handler=_cmd_reconcile)
    return parser


def _exit_code(exc: SubmitError) -> int:
    if isinstance(exc, WaitTimeout):
        return EXIT_TIMEOUT
    if isinstance(exc, ConfigError | ImageError | AuthenticationError):
        return EXIT_USAGE
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vlm-submit``; returns the exit code instead of exiting."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or argparse's own usage error (already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except SubmitError as exc:
        _error(str(exc))
        return _exit_code(exc)
    except VlmhooksError as exc:  # settings: a missing or invalid variable, named
        _error(exc.detail)
        return EXIT_USAGE
    except sa.exc.SQLAlchemyError as exc:
        # The URL may hold a password: name the variable, not its value.
        orig = getattr(exc, "orig", None) or exc
        _error(f"database error (DATABASE_URL): {str(orig).strip().splitlines()[0]}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED


def _error(message: str) -> None:
    print(f"vlm-submit: error: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

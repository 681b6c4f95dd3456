"""`vlm-submit list`: stored predictions, newest first, from the same source `get` reads.

The source is picked as `get` picks it (an explicit --receiver-url, else DATABASE_URL, else
$VLMHOOKS_RECEIVER_URL, else the VLM Run API) and named on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from schemas.enums import Status
from submit.lookup import (
    RECEIVER_URL_ENV,
    describe_source,
    reading_source,
)
from vlmhooks.cli_args import positive_int, table_width
from vlmhooks.reads.queries import PredictionFilters
from vlmhooks.settings import load_settings

__all__ = ["DEFAULT_LIST_LIMIT", "add_list_command"]

DEFAULT_LIST_LIMIT = 20


def add_list_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `list` to the `vlm-submit` subcommands."""
    command = commands.add_parser("list", help="show predictions, newest first")
    command.add_argument(
        "--status", choices=[status.value for status in Status], help="only this status"
    )
    command.add_argument("--domain", default=None, help="only this domain, e.g. document.invoice")
    command.add_argument("--submission-id", default=None, help="only this submission's prediction")
    command.add_argument(
        "--limit",
        type=positive_int,
        default=DEFAULT_LIST_LIMIT,
        help=f"at most this many (default {DEFAULT_LIST_LIMIT})",
    )
    command.add_argument(
        "--json", action="store_true", help="print a JSON list of the predictions instead"
    )
    command.add_argument(
        "--receiver-url",
        default=None,
        help=f"read from this receiver (beats DATABASE_URL; default ${RECEIVER_URL_ENV})",
    )
    command.set_defaults(handler=run_list)


def run_list(args: argparse.Namespace) -> int:
    filters = PredictionFilters(
        status=None if args.status is None else Status(args.status),
        domain=args.domain,
        submission_id=args.submission_id,
    )
    with reading_source(load_settings(), args.receiver_url) as source:
        print(f"vlm-submit: {describe_source(source)}", file=sys.stderr)
        predictions = source.recent(filters, args.limit)
    if args.json:
        print(json.dumps(predictions, indent=2, default=str))
    elif predictions:
        _print_table(predictions)
    else:
        print("vlm-submit: no predictions match", file=sys.stderr)
    return 0


def _print_table(predictions: list[dict[str, Any]]) -> None:
    table = Table("prediction", "status", "domain", "created", "completed", "submission")
    for column in (table.columns[0], table.columns[-1]):
        column.overflow = "fold"  # ids are for copying: wrap them, never cut them
    for body in predictions:
        ours = body.get("vlmhooks") or {}
        table.add_row(
            str(body.get("id")),
            str(body.get("status")),
            body.get("domain") or "-",
            body.get("created_at") or "-",
            body.get("completed_at") or "-",
            ours.get("submission_id") or "-",
        )
    Console(width=table_width()).print(table)

"""`vlm-receiver deliveries replay | prune`: re-ingest stored deliveries, delete old ones."""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, get_args

import orjson

from receiver.http.shapes import ReplayResult
from receiver.ingest.replay import (
    DEFAULT_REPLAY_LIMIT,
    ReplaySelection,
    replay_report,
    replay_selected,
)
from receiver.ingest.verify import SignaturePolicy
from schemas.contract import as_utc
from vlmhooks.durations import DurationTooLong, parse_duration
from vlmhooks.errors import ConfigError
from vlmhooks.settings import Settings
from vlmhooks.store.db import make_engine
from vlmhooks.store.records import DeliveryVerdict
from vlmhooks.store.retention import DEFAULT_PRUNE_BATCH, prune_deliveries

__all__ = ["add_deliveries_commands", "parse_when"]

_WOULD = {"stored": "would store", "updated": "would update"}


def add_deliveries_commands(commands: Any) -> None:
    """Register `deliveries replay` and `deliveries prune` on the CLI's subparsers."""
    deliveries = commands.add_parser("deliveries", help="replay or prune the delivery log")
    sub = deliveries.add_subparsers(dest="deliveries_command", required=True)

    replay = sub.add_parser(
        "replay", help="re-ingest stored deliveries (after a contract change, a fix, a schema)"
    )
    replay.add_argument("--prediction-id", default=None)
    replay.add_argument("--submission-id", default=None)
    replay.add_argument(
        "--verdict",
        action="append",
        choices=get_args(DeliveryVerdict),
        help="only deliveries with this verdict when received (repeatable), e.g. rejected",
    )
    replay.add_argument("--since", default=None, help="received at or after: ISO 8601 or 2h/7d ago")
    replay.add_argument("--until", default=None, help="received before: ISO 8601 or 2h/7d ago")
    replay.add_argument("--limit", type=int, default=None, help="at most this many deliveries")
    replay.add_argument("--dry-run", action="store_true", help="show what would change")
    replay.add_argument("--json", action="store_true", help="print the report as JSON")
    replay.set_defaults(handler=_cmd_replay)

    prune = sub.add_parser("prune", help="delete deliveries older than the retention")
    prune.add_argument(
        "--older-than",
        default=None,
        help="a duration (e.g. 30d); default $VLMHOOKS_DELIVERY_RETENTION",
    )
    prune.add_argument("--batch", type=int, default=DEFAULT_PRUNE_BATCH, help="rows per commit")
    prune.set_defaults(handler=_cmd_prune)


def parse_when(text: str, *, now: datetime, option: str) -> datetime:
    """An ISO 8601 instant (UTC if no offset), or a duration meaning that long ago."""
    try:
        return now - parse_duration(text)
    except DurationTooLong as exc:
        raise ConfigError(f"{option}: {exc}") from None
    except ValueError:
        pass
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        raise ConfigError(
            f"{option}: expected ISO 8601 or a duration like 2h, got {text!r}"
        ) from None


def _when(text: str | None, *, now: datetime, option: str) -> datetime | None:
    return None if text is None else parse_when(text, now=now, option=option)


def _cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    now = datetime.now(UTC)
    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be at least 1")
    selection = ReplaySelection(
        prediction_id=args.prediction_id,
        submission_id=args.submission_id,
        verdicts=tuple(args.verdict or ()),
        received_after=None
        if args.since is None
        else parse_when(args.since, now=now, option="--since"),
        received_before=None
        if args.until is None
        else parse_when(args.until, now=now, option="--until"),
    )
    policy = SignaturePolicy.from_settings(settings)
    engine = make_engine(
        settings.database_url, pool_size=1, immediate_writes=True, pooler=settings.db_pooler
    )
    results: list[ReplayResult] = []
    try:
        remaining = args.limit
        while remaining is None or remaining > 0:
            page_size = (
                DEFAULT_REPLAY_LIMIT if remaining is None else min(remaining, DEFAULT_REPLAY_LIMIT)
            )
            after_id = results[-1]["delivery_id"] if results else None
            page = replace(selection, after_id=after_id, limit=page_size)
            # One short transaction per page, as the receiver's own writes are; a dry run
            # does the same work and rolls it back, so what it prints is what a run would do
            # (page by page: a later page does not see an earlier page's rolled-back rows).
            with engine.connect() as connection:
                transaction = connection.begin()
                page_results = replay_selected(connection, page, policy, now=now)
                if args.dry_run:
                    transaction.rollback()
                else:
                    transaction.commit()
            if not args.json:
                for result in page_results:
                    print(_line(result, dry_run=args.dry_run))
            results.extend(page_results)
            if remaining is not None:
                remaining -= len(page_results)
            if len(page_results) < page_size:
                break
    finally:
        engine.dispose()
    report = replay_report(results, dry_run=args.dry_run, more=False)
    if args.json:
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        summary = ", ".join(f"{outcome} {n}" for outcome, n in sorted(report["counts"].items()))
        verb = "dry run, nothing changed" if args.dry_run else "replayed"
        print(f"{verb}: {len(results)} deliveries" + (f" ({summary})" if summary else ""))
    return 0


def _line(result: ReplayResult, *, dry_run: bool) -> str:
    outcome = result["outcome"]
    said = _WOULD.get(outcome, outcome) if dry_run else outcome
    head = (
        f"delivery {result['delivery_id']} ({result['original_verdict']}) "
        f"prediction {result['prediction_id'] or '-'}: {said}"
    )
    if result["status"] is not None:
        head += f" [{result['status']}]"
    return f"{head}: {result['reason']}" if result["reason"] else head


def _cmd_prune(args: argparse.Namespace, settings: Settings) -> int:
    if args.older_than is not None:
        try:
            retention = parse_duration(args.older_than)
        except ValueError as exc:
            raise ConfigError(f"--older-than: {exc}") from None
    elif settings.delivery_retention is not None:
        retention = settings.delivery_retention
    else:
        raise ConfigError(
            "VLMHOOKS_DELIVERY_RETENTION is not set: set it (e.g. 30d) or pass --older-than"
        )
    if args.batch < 1:
        raise ConfigError("--batch must be at least 1")
    cutoff = datetime.now(UTC) - retention
    engine = make_engine(
        settings.database_url, pool_size=1, immediate_writes=True, pooler=settings.db_pooler
    )
    try:
        deleted = prune_deliveries(engine, cutoff, batch=args.batch)
    finally:
        engine.dispose()
    print(f"pruned {deleted} deliveries received before {cutoff.isoformat()}")
    return 0

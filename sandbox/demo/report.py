"""What the demo prints: one row per submitted sample, read back from what the receiver stored,
as a table that fits the terminal; then the outcome and how to look the predictions up."""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sandbox.demo.servers import DemoSecrets
from schemas.contract import as_utc
from schemas.enums import Status
from submit.submitter import SubmitResult

__all__ = [
    "EXIT_INCOMPLETE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "SUMMARY_WIDTH",
    "DemoRow",
    "demo_row",
    "print_lookups",
    "report_outcome",
    "result_table",
    "summarize_response",
]

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_INTERRUPTED = 130

SUMMARY_WIDTH = 48
SQLITE_EXAMPLE = "select id, domain, status from prediction order by created_at"

# What one line of each sample domain's response says; missing fields show as "?".
_SUMMARIES = {
    "document.invoice": "{vendor_name}: total {total} {currency}",
    "document.receipt": "{merchant_name}: total {total} {currency}",
    "image.caption": "{caption}",
    "retail.product-catalog": "{product_name}: {price} {currency}",
}


@dataclass(frozen=True)
class DemoRow:
    """One line of the final table, read from what the receiver stored."""

    sample: str
    domain: str
    submission_id: str
    prediction_id: str | None
    status: str  # the stored status, or "not stored" / "not sent"
    latency_ms: int | None  # submit (sent_at) to stored (updated_at of the terminal write)
    callbacks: str  # deliveries that came as callbacks, and what became of the extra ones
    polls: int  # answers `vlm-submit reconcile` fetched from the API and stored
    summary: str

    @property
    def completed(self) -> bool:
        return self.status == Status.COMPLETED.value


def demo_row(
    sample: str,
    domain: str,
    result: SubmitResult,
    submission: dict[str, Any] | None,
    deliveries: Iterable[dict[str, Any]],
) -> DemoRow:
    """The row for one sent sample, from the lookup shapes: ``submission`` as
    `GET /v1/submissions/{id}` answers it (None when not recorded), and its deliveries."""
    # A reconcile poll is logged as a delivery too (source "poll"); counted apart, so a
    # dropped callback never shows as one that arrived.
    by_source: dict[str, list[dict[str, Any]]] = {"callback": [], "poll": []}
    for delivery in deliveries:
        by_source.setdefault(str(delivery["source"]), []).append(delivery)
    callbacks = _count_text(Counter(str(d["verdict"]) for d in by_source["callback"]))
    polls = len(by_source["poll"])
    prediction = None if submission is None else submission["prediction"]
    if submission is None or prediction is None:
        return DemoRow(
            sample=sample,
            domain=domain,
            submission_id=result.submission_id,
            prediction_id=result.prediction_id,
            status="not sent" if result.error else "not stored",
            latency_ms=None,
            callbacks=callbacks,
            polls=polls,
            summary=_clip(result.error or ""),
        )
    status = str(prediction["status"])
    submitted = submission["sent_at"] or submission["created_at"]
    return DemoRow(
        sample=sample,
        domain=domain,
        submission_id=result.submission_id,
        prediction_id=str(prediction["id"]),
        status=status,
        latency_ms=_latency_ms(submitted, prediction["vlmhooks"]["updated_at"]),
        callbacks=callbacks,
        polls=polls,
        summary=summarize_response(domain, status, prediction["response"]),
    )


def _latency_ms(submitted: str, stored: str) -> int:
    elapsed = as_utc(datetime.fromisoformat(stored)) - as_utc(datetime.fromisoformat(submitted))
    return max(0, round(elapsed.total_seconds() * 1000))


def _count_text(verdicts: Counter[str]) -> str:
    """`1`, or the total and what became of the extra ones: `6: 2 duplicate, 3 stale`."""
    if not verdicts:
        return "0"
    total = sum(verdicts.values())
    order = ("updated", "duplicate", "replay", "stale", "rejected")
    extra = ", ".join(f"{verdicts[name]} {name}" for name in order if verdicts[name])
    return f"{total}: {extra}" if extra else str(total)


class _Lenient(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def summarize_response(domain: str | None, status: str | None, response: Any) -> str:
    """One line of a stored response: an invoice's total, a caption, a failure's error."""
    if not isinstance(response, dict):
        return "" if response is None else _clip(str(response))
    if status == Status.FAILED.value and "error" in response:
        return _clip(f"error: {response['error']}")
    template = _SUMMARIES.get(domain or "")
    if template is not None:
        return _clip(template.format_map(_Lenient(response)))
    fields = [key for key in response if not key.startswith("_")]
    return _clip("fields: " + ", ".join(fields))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_WIDTH else text[: SUMMARY_WIDTH - 1] + "…"


# -- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    header: str
    cell: Callable[[DemoRow], str | Text]
    keep: int  # lower is kept longer when the terminal is narrow
    shrink_to: int | None = None  # None: shown whole or not at all
    max_width: int | None = None
    justify: Literal["left", "right"] = "left"


def _status_cell(row: DemoRow) -> Text:
    style = "green" if row.completed else ("red" if row.status == "failed" else "yellow")
    return Text(row.status, style=style)


_COLUMNS = (
    # The id is what a lookup needs: never clipped, and the last column to go.
    _Column("prediction id", lambda row: row.prediction_id or "—", keep=0),
    _Column("sample", lambda row: row.sample, keep=6),
    _Column("domain", lambda row: row.domain, keep=3, shrink_to=12),
    _Column("status", _status_cell, keep=1),
    _Column(
        "submit→stored",
        lambda row: "—" if row.latency_ms is None else f"{row.latency_ms} ms",
        keep=2,
        justify="right",
    ),
    _Column("callbacks", lambda row: row.callbacks, keep=4, shrink_to=9),
    _Column("polls", lambda row: str(row.polls), keep=7),
    _Column("response", lambda row: row.summary, keep=5, shrink_to=16, max_width=SUMMARY_WIDTH),
)
_CELL_FRAME = 3  # padding on both sides and one border


def result_table(rows: Sequence[DemoRow], width: int) -> Table:
    """The result table with the columns that fit `width`, each sized here: rich would squash
    wrappable columns to nothing on a narrow terminal."""
    wanted = {}
    for column in _COLUMNS:
        natural = max([cell_len(column.header)] + [cell_len(str(column.cell(r))) for r in rows])
        wanted[column.header] = min(natural, column.max_width or natural)
    budget = width - 1  # the table's left border
    widths: dict[str, int] = {}
    by_priority = sorted(_COLUMNS, key=lambda column: column.keep)
    for column in by_priority:
        need = min(wanted[column.header], column.shrink_to or wanted[column.header])
        if need + _CELL_FRAME <= budget or not widths:
            widths[column.header] = need
            budget -= need + _CELL_FRAME
    for column in by_priority:  # what is left widens the shrunk columns, most important first
        if column.header in widths:
            grow = min(wanted[column.header] - widths[column.header], max(budget, 0))
            widths[column.header] += grow
            budget -= grow
    table = Table(title="Predictions stored by the receiver", title_justify="left")
    columns = [column for column in _COLUMNS if column.header in widths]
    for column in columns:
        table.add_column(
            column.header,
            width=widths[column.header],
            justify=column.justify,
            no_wrap=True,
            overflow="ellipsis",
        )
    for row in rows:
        table.add_row(*(column.cell(row) for column in columns))
    return table


# -- after the table ------------------------------------------------------------------------


def report_outcome(
    out: Console,
    err: Console,
    rows: Sequence[DemoRow],
    pending: Sequence[str],
    *,
    timeout: float,
    dropped: bool,
    elapsed: float,
) -> int:
    """One line on how the run went; its exit code (0 only when every row is completed)."""
    completed = sum(row.completed for row in rows)
    if completed == len(rows) and not pending:
        out.print(f"All {len(rows)} predictions completed and stored in {elapsed:.1f} s.")
        return EXIT_OK
    if pending:
        hint = " (--faults drop sends no callbacks)" if dropped else ""
        err.print(
            f"vlm-sandbox: error: timed out after {timeout:g} s waiting for callbacks: "
            f"{len(pending)} of {len(rows)} predictions not stored as completed or failed{hint}"
        )
    else:
        out.print(f"{completed} of {len(rows)} predictions completed; see the table above.")
    return EXIT_INCOMPLETE


def print_lookups(
    out: Console,
    rows: Sequence[DemoRow],
    database: Path,
    *,
    temporary: bool,
    receiver_url: str | None,
    lookup_api_key: str,
) -> None:
    """Where the predictions are: the database file, and the receiver when it keeps running."""
    example = next((row.prediction_id for row in rows if row.prediction_id), "<prediction id>")
    key = lookup_api_key
    if temporary:
        out.print(f"Database: {database} (temporary: removed on exit; keep one with --database)")
    else:
        out.print(f"Database: {database}")
        out.print(f"  sqlite3 {shlex.quote(str(database))} {shlex.quote(SQLITE_EXAMPLE)}")
    if receiver_url is None:
        out.print("To look them up over HTTP, run the demo with --keep-running.")
        return
    out.print(f"Receiver: {receiver_url} (lookup API key {key})")
    out.print(f"  curl -H 'Authorization: Bearer {key}' '{receiver_url}/v1/predictions/{example}'")
    out.print(f"  curl -H 'Authorization: Bearer {key}' '{receiver_url}/v1/predictions'")
    out.print(f"Dashboard: {receiver_url}/dashboard (sign in with the lookup API key)")


def print_exports(
    out: Console,
    *,
    api_url: str,
    receiver_url: str,
    database_url: str,
    demo_secrets: DemoSecrets,
) -> None:
    """A ready `export` block: paste it into another shell and `vlm-submit` (and the public
    SDK) drive the running demo, its sandbox API and its receiver."""
    variables = {
        "VLMRUN_BASE_URL": api_url,
        "VLMRUN_API_KEY": demo_secrets.sandbox_api_key,
        "VLMHOOKS_PUBLIC_URL": receiver_url,
        "VLMHOOKS_SECRET_KEYS": demo_secrets.callback_token_key,
        "VLMHOOKS_RECEIVER_URL": receiver_url,
        "VLMHOOKS_API_KEY": demo_secrets.lookup_api_key,
        "DATABASE_URL": database_url,
    }
    out.print("To drive the running demo from another shell, paste:")
    for name, value in variables.items():
        out.print(f"  export {name}={shlex.quote(value)}")
    out.print("  vlm-submit images --domain image.caption --wait path/to/image.png")
    out.print(
        "  python -c 'import os; from vlmrun.client import VLMRun; "
        'print(VLMRun(api_key=os.environ["VLMHOOKS_API_KEY"], '
        'base_url=os.environ["VLMHOOKS_RECEIVER_URL"] + "/v1").predictions.list())\''
    )

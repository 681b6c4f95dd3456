"""`vlm-sandbox demo`: the whole loop on loopback, from the shipped samples to stored predictions.

A sandbox API and a receiver run under uvicorn in threads of this process; the real `Submitter`
sends the samples with signed callback URLs, and the receiver's lookup API says when they landed.
"""

from __future__ import annotations

import secrets
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import httpx
import sqlalchemy as sa
import uvicorn
from pydantic import SecretStr
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette

from receiver.app import create_app
from sandbox.app import create_sandbox_app
from sandbox.errors import DemoError, SandboxError
from sandbox.faults import FaultPlan, parse_faults
from sandbox.samples import SAMPLE_DOMAINS, sample_paths
from sandbox.settings import SandboxConfig
from schemas.contract import RequestMetadata, as_utc
from schemas.enums import Status
from schemas.tables import Delivery, Prediction, Submission
from submit.client import ReceiverClient, VlmRunClient
from submit.errors import NotFound, SubmitError
from submit.images import expand_image_inputs
from submit.submitter import SubmitItem, SubmitResult, Submitter
from vlmhooks import migrate
from vlmhooks.db import make_engine
from vlmhooks.errors import VlmhooksError
from vlmhooks.settings import Settings
from vlmhooks.tokens import CallbackTokens

__all__ = [
    "DemoError",
    "DemoOptions",
    "DemoRow",
    "LoopbackServer",
    "run_demo",
    "summarize_response",
]

MAX_COUNT = 1000
LOOPBACK = "127.0.0.1"
DATABASE_NAME = "vlmhooks.db"
# One long-poll is cut short well before the receiver's 60 s ceiling; the loop asks again.
LONG_POLL_SECONDS = 25.0
POLL_INTERVAL_SECONDS = 0.05
# Once every prediction is terminal, late callbacks (duplicates, stale `running`) get this long
# to land, so the table's callback counts are the whole story rather than a snapshot.
SETTLE_SECONDS = 5.0
STARTUP_TIMEOUT_SECONDS = 20.0
# Bounds shutdown when a long-poll is still open (after Ctrl-C, say).
GRACEFUL_SHUTDOWN_SECONDS = 2
SUMMARY_WIDTH = 48
SQLITE_EXAMPLE = "select id, domain, status from prediction order by created_at"
PIPED_TABLE_WIDTH = 200
EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_INTERRUPTED = 130

PREDICTION = Prediction.__table__  # type: ignore[attr-defined]
SUBMISSION = Submission.__table__  # type: ignore[attr-defined]
DELIVERY = Delivery.__table__  # type: ignore[attr-defined]

# What one line of each sample domain's response says; missing fields show as "?".
_SUMMARIES = {
    "document.invoice": "{vendor_name}: total {total} {currency}",
    "document.receipt": "{merchant_name}: total {total} {currency}",
    "image.caption": "{caption}",
    "retail.product-catalog": "{product_name}: {price} {currency}",
}


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    """The `vlm-sandbox demo` command line, as values; `faults` None keeps the sandbox's own."""

    timeout: float  # seconds for the whole run, start-up to the last callback
    database: Path | None = None
    faults: str | None = None
    count: int = 1
    keep_running: bool = False


@dataclass(frozen=True)
class DemoSecrets:
    """Fresh secrets for one run: nothing to configure, nothing reused between runs."""

    sandbox_api_key: str = field(repr=False)
    callback_token_key: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    lookup_api_key: str = field(repr=False)

    @classmethod
    def generate(cls) -> DemoSecrets:
        return cls(
            sandbox_api_key="sk-demo-" + secrets.token_urlsafe(24),
            callback_token_key=secrets.token_urlsafe(32),
            webhook_secret=secrets.token_urlsafe(32),
            lookup_api_key="lk-demo-" + secrets.token_urlsafe(24),
        )


@dataclass(frozen=True)
class Sent:
    """One submitted sample: the submitter's result and which file it was."""

    sample: str
    result: SubmitResult


@dataclass(frozen=True)
class DemoRow:
    """One line of the final table, read from the receiver's database."""

    sample: str
    domain: str
    submission_id: str
    prediction_id: str | None
    status: str  # the stored status, or "not stored" / "not sent"
    latency_ms: int | None  # submit (sent_at) to stored (updated_at of the terminal write)
    callbacks: str
    summary: str

    @property
    def completed(self) -> bool:
        return self.status == Status.COMPLETED.value


class LoopbackServer:
    """An ASGI app under uvicorn in a daemon thread, on a socket bound before the app exists
    (so its URL can go into the app's own configuration)."""

    def __init__(self, name: str, sock: socket.socket) -> None:
        self.name = name
        self.sock = sock
        self.port = int(sock.getsockname()[1])
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, app: Starlette) -> None:
        # log_config=None: uvicorn leaves this process's logging alone; warnings still show.
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self.sock]},
            name=f"vlm-demo-{self.name}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise DemoError(f"the {self.name} did not start on {self.url}; see the log above")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=GRACEFUL_SHUTDOWN_SECONDS + 5)
        self.sock.close()


def bind_loopback() -> socket.socket:
    """A listening socket on a free loopback port, held until uvicorn takes it over."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((LOOPBACK, 0))
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise DemoError(f"cannot listen on {LOOPBACK}: {exc.strerror or exc}") from exc
    return sock


def run_demo(
    options: DemoOptions,
    config: SandboxConfig,
    *,
    out: Console | None = None,
    err: Console | None = None,
) -> int:
    """Run the demo; 0 when every prediction is stored `completed`, 1 when not, 130 on Ctrl-C.

    A setup problem raises `DemoError` (the CLI prints it as one line).
    """
    # markup off: paths and server messages are printed as they are, brackets and all.
    width = None if _isatty() else PIPED_TABLE_WIDTH
    out = out or Console(width=width, highlight=False, markup=False, soft_wrap=True)
    err = err or Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
    plan = _validate(options, config)
    try:
        with _sigterm_as_interrupt():
            return _run(options, config, plan, out, err)
    except SubmitError as exc:
        raise DemoError(str(exc)) from exc
    except VlmhooksError as exc:
        raise DemoError(exc.detail) from exc
    except SQLAlchemyError as exc:
        raise DemoError(f"database error: {getattr(exc, 'orig', None) or exc}") from exc
    except KeyboardInterrupt:
        # The ExitStack has already stopped both servers and removed any temporary files.
        err.print("vlm-sandbox: demo interrupted; servers stopped")
        return EXIT_INTERRUPTED


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the demo as Ctrl-C does: servers stopped, temporary files removed."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _validate(options: DemoOptions, config: SandboxConfig) -> FaultPlan:
    if not 1 <= options.count <= MAX_COUNT:
        raise DemoError(f"--count must be between 1 and {MAX_COUNT}, got {options.count}")
    if not options.timeout > 0:
        raise DemoError(f"--timeout must be a positive number of seconds, got {options.timeout}")
    if options.database is not None and options.database.is_dir():
        raise DemoError(f"--database {options.database} is a directory; give a file path")
    try:
        # --faults replaces the sandbox's own default, so the demo shows exactly what was asked.
        return parse_faults(options.faults if options.faults is not None else config.faults)
    except SandboxError as exc:
        raise DemoError(f"--faults: {exc}") from exc


def _run(
    options: DemoOptions, config: SandboxConfig, plan: FaultPlan, out: Console, err: Console
) -> int:
    demo_secrets = DemoSecrets.generate()
    samples = _samples()
    started = time.monotonic()
    deadline = started + options.timeout
    code = EXIT_INCOMPLETE
    with ExitStack() as stack:
        database = _database_path(options.database, stack)
        database_url = sa.engine.URL.create("sqlite", database=str(database)).render_as_string()
        engine = _migrated_engine(database_url, database)
        stack.callback(engine.dispose)

        sandbox = LoopbackServer("sandbox", bind_loopback())
        stack.callback(sandbox.stop)
        receiver = LoopbackServer("receiver", bind_loopback())
        stack.callback(receiver.stop)
        sandbox_config = config.model_copy(
            update={
                "api_keys": (SecretStr(demo_secrets.sandbox_api_key),),
                "vlmrun_webhook_secret": SecretStr(demo_secrets.webhook_secret),
                "standard_webhook_secret": None,
                "faults": plan.to_text(),
            }
        )
        sandbox.start(create_sandbox_app(sandbox_config))
        api_url = f"{sandbox.url}/v1"
        settings = _receiver_settings(database_url, receiver.url, api_url, demo_secrets)
        receiver.start(create_app(settings))
        err.print(f"vlm-sandbox demo: sandbox API {api_url} (faults: {plan.to_text()})")
        temporary = " (temporary)" if options.database is None else ""
        err.print(f"vlm-sandbox demo: receiver {receiver.url}, database {database}{temporary}")

        api = stack.enter_context(VlmRunClient(demo_secrets.sandbox_api_key, api_url))
        lookup = stack.enter_context(ReceiverClient(receiver.url, demo_secrets.lookup_api_key))
        tokens = CallbackTokens([demo_secrets.callback_token_key])
        err.print(
            f"vlm-sandbox demo: submitting {len(samples) * options.count} images "
            "(batch, signed callback URLs) and waiting for their callbacks..."
        )
        sent = _submit(api, engine, tokens, receiver.url, samples, options.count)
        prediction_ids = [s.result.prediction_id for s in sent if s.result.prediction_id]
        pending = _wait_until_stored(lookup, prediction_ids, deadline)
        if not pending:
            _settle_deliveries(api_url, demo_secrets, sandbox_config, plan, prediction_ids)

        rows = _read_rows(engine, sent)
        out.print(_table(rows, out.width))
        code = _report(out, err, rows, pending, options, plan, time.monotonic() - started)
        _print_lookups(out, rows, database, receiver.url, demo_secrets, options)
        if options.keep_running:
            _serve_until_interrupted(out, (sandbox, receiver))
    return code


# -- setup ----------------------------------------------------------------------------------


def _isatty() -> bool:
    return sys.stdout.isatty()


def _samples() -> list[tuple[Path, str]]:
    paths = [path for path in sample_paths() if path.name in SAMPLE_DOMAINS]
    samples = [(path, SAMPLE_DOMAINS[path.name]) for path in paths]
    if not samples:
        raise DemoError("no sample images ship with this installation (sandbox/samples/)")
    return samples


def _database_path(chosen: Path | None, stack: ExitStack) -> Path:
    if chosen is not None:
        try:
            chosen.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DemoError(f"--database {chosen}: {exc.strerror or exc}") from exc
        return chosen.resolve()
    folder = Path(tempfile.mkdtemp(prefix="vlmhooks-demo-"))
    # Registered first, so it runs last: after the receiver has let go of the file.
    stack.callback(shutil.rmtree, folder, ignore_errors=True)
    return folder / DATABASE_NAME


def _migrated_engine(database_url: str, database: Path) -> Engine:
    engine = make_engine(database_url, immediate_writes=True)
    try:
        migrate.upgrade(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = getattr(exc, "orig", None) or exc
        raise DemoError(f"cannot use {database} as the demo database: {reason}") from exc
    return engine


def _receiver_settings(
    database_url: str, public_url: str, api_url: str, demo_secrets: DemoSecrets
) -> Settings:
    # Everything that decides whether a callback is accepted is set here, so a VLMHOOKS_*
    # variable left in the shell (another webhook secret, fetch-back) cannot break the demo.
    return Settings(
        database_url=database_url,
        public_url=public_url,
        secret_keys=(SecretStr(demo_secrets.callback_token_key),),
        vlmrun_webhook_secrets=(SecretStr(demo_secrets.webhook_secret),),
        standard_webhook_secrets=(),
        api_keys=(SecretStr(demo_secrets.lookup_api_key),),
        allow_anonymous_reads=False,
        fetch_back=False,
        vlmrun_api_key=SecretStr(demo_secrets.sandbox_api_key),
        vlmrun_base_url=api_url,
    )


# -- the loop -------------------------------------------------------------------------------


def _submit(
    api: VlmRunClient,
    engine: Engine,
    tokens: CallbackTokens,
    public_url: str,
    samples: Sequence[tuple[Path, str]],
    count: int,
) -> list[Sent]:
    """Send every sample `count` times, one `Submitter` per domain; results in sample order."""
    metadata = RequestMetadata(
        environment="dev", session_id=f"vlmhooks-demo-{secrets.token_hex(4)}", allow_training=False
    )
    sent: list[Sent] = []
    for path, domain in samples:
        submitter = Submitter(
            api,
            domain=domain,
            batch=True,
            engine=engine,
            tokens=tokens,
            public_url=public_url,
            metadata=metadata,
        )
        items = [SubmitItem(tuple(expand_image_inputs([path])))] * count
        results = sorted(submitter.submit(items), key=lambda result: result.index)
        sent.extend(Sent(path.name, result) for result in results)
    return sent


def _wait_until_stored(
    lookup: ReceiverClient, prediction_ids: Sequence[str], deadline: float
) -> list[str]:
    """Long-poll the receiver until each prediction is stored terminal; the ids still pending."""
    pending = list(prediction_ids)
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            body = lookup.get_prediction(pending[0], wait=min(remaining, LONG_POLL_SECONDS))
        except NotFound:
            continue  # not stored within that long-poll; ask again until the deadline
        if _is_terminal(body.get("status")):
            pending.pop(0)
        else:
            time.sleep(min(POLL_INTERVAL_SECONDS, max(0.0, deadline - time.monotonic())))
    return pending


def _settle_deliveries(
    api_url: str,
    demo_secrets: DemoSecrets,
    config: SandboxConfig,
    plan: FaultPlan,
    prediction_ids: Sequence[str],
) -> None:
    """Wait (briefly) until the sandbox has finished every callback it means to send.

    The first completed callback ends the wait; duplicates and stale ones come after it.
    """
    if plan.drop or not prediction_ids:
        return
    messages = 2 if plan.out_of_order or config.deliver_intermediate else 1
    expected = plan.duplicate * messages
    wanted = set(prediction_ids)
    # The delay fault sleeps once before each message (its copies follow at once).
    deadline = time.monotonic() + SETTLE_SECONDS + plan.delay * messages
    headers = {"Authorization": f"Bearer {demo_secrets.sandbox_api_key}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=10) as http:
        while time.monotonic() < deadline:
            try:
                attempts = http.get("/sandbox/deliveries").raise_for_status().json()
            except httpx.HTTPError:
                return  # best effort: the table is then a snapshot, which is still true
            finished: Counter[str] = Counter()
            seen: set[tuple[str, str, int]] = set()
            for attempt in attempts:
                key = (attempt["prediction_id"], attempt["prediction_status"], attempt["copy"])
                done = attempt["ok"] or attempt["attempt"] >= config.max_attempts
                if done and key not in seen and key[0] in wanted:
                    seen.add(key)
                    finished[key[0]] += 1
            if all(finished[prediction_id] >= expected for prediction_id in wanted):
                return
            time.sleep(POLL_INTERVAL_SECONDS)


def _is_terminal(status: object) -> bool:
    try:
        return Status(str(status)).is_terminal
    except ValueError:
        return False


# -- the result -----------------------------------------------------------------------------


def _read_rows(engine: Engine, sent: Sequence[Sent]) -> list[DemoRow]:
    """This run's submissions joined to what the receiver stored, in submission order."""
    ids = [s.result.submission_id for s in sent]
    query = (
        sa.select(
            SUBMISSION.c.id,
            SUBMISSION.c.sent_at,
            SUBMISSION.c.created_at,
            PREDICTION.c.id.label("prediction_id"),
            PREDICTION.c.status,
            PREDICTION.c.response,
            PREDICTION.c.updated_at,
        )
        .select_from(
            SUBMISSION.outerjoin(PREDICTION, PREDICTION.c.submission_id == SUBMISSION.c.id)
        )
        .where(SUBMISSION.c.id.in_(ids))
    )
    verdicts = sa.select(DELIVERY.c.submission_id, DELIVERY.c.verdict).where(
        DELIVERY.c.submission_id.in_(ids)
    )
    with engine.connect() as connection:
        stored = {row.id: row for row in connection.execute(query)}
        callbacks: dict[str, Counter[str]] = {}
        for submission_id, verdict in connection.execute(verdicts):
            callbacks.setdefault(submission_id, Counter())[verdict] += 1
    rows = []
    for item in sent:
        result = item.result
        row = stored.get(result.submission_id)
        domain = str(SAMPLE_DOMAINS.get(item.sample, ""))
        if row is None or row.prediction_id is None:
            status = "not sent" if result.error else "not stored"
            rows.append(
                DemoRow(
                    sample=item.sample,
                    domain=domain,
                    submission_id=result.submission_id,
                    prediction_id=result.prediction_id,
                    status=status,
                    latency_ms=None,
                    callbacks=_count_text(callbacks.get(result.submission_id)),
                    summary=_clip(result.error or ""),
                )
            )
            continue
        rows.append(
            DemoRow(
                sample=item.sample,
                domain=domain,
                submission_id=result.submission_id,
                prediction_id=row.prediction_id,
                status=row.status,
                latency_ms=_latency_ms(row.sent_at or row.created_at, row.updated_at),
                callbacks=_count_text(callbacks.get(result.submission_id)),
                summary=summarize_response(domain, row.status, row.response),
            )
        )
    return rows


def _latency_ms(submitted: datetime, stored: datetime) -> int:
    return max(0, round((as_utc(stored) - as_utc(submitted)).total_seconds() * 1000))


def _count_text(verdicts: Counter[str] | None) -> str:
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
    _Column("response", lambda row: row.summary, keep=5, shrink_to=16, max_width=SUMMARY_WIDTH),
)
_CELL_FRAME = 3  # padding on both sides and one border


def _table(rows: Sequence[DemoRow], width: int) -> Table:
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


def _report(
    out: Console,
    err: Console,
    rows: Sequence[DemoRow],
    pending: Sequence[str],
    options: DemoOptions,
    plan: FaultPlan,
    elapsed: float,
) -> int:
    completed = sum(row.completed for row in rows)
    if completed == len(rows) and not pending:
        out.print(f"All {len(rows)} predictions completed and stored in {elapsed:.1f} s.")
        return EXIT_OK
    if pending:
        hint = " (--faults drop sends no callbacks)" if plan.drop else ""
        err.print(
            f"vlm-sandbox: error: timed out after {options.timeout:g} s waiting for callbacks: "
            f"{len(pending)} of {len(rows)} predictions not stored as completed or failed{hint}"
        )
    else:
        out.print(f"{completed} of {len(rows)} predictions completed; see the table above.")
    return EXIT_INCOMPLETE


def _print_lookups(
    out: Console,
    rows: Sequence[DemoRow],
    database: Path,
    receiver_url: str,
    demo_secrets: DemoSecrets,
    options: DemoOptions,
) -> None:
    example = next((row.prediction_id for row in rows if row.prediction_id), "<prediction id>")
    key = demo_secrets.lookup_api_key
    if options.database is None:
        out.print(f"Database: {database} (temporary: removed on exit; keep one with --database)")
    else:
        out.print(f"Database: {database}")
        out.print(f"  sqlite3 {shlex.quote(str(database))} {shlex.quote(SQLITE_EXAMPLE)}")
    if not options.keep_running:
        out.print("To look them up over HTTP, run the demo with --keep-running.")
        return
    out.print(f"Receiver: {receiver_url} (lookup API key {key})")
    out.print(f"  curl -H 'Authorization: Bearer {key}' '{receiver_url}/v1/predictions/{example}'")
    out.print(f"  curl -H 'Authorization: Bearer {key}' '{receiver_url}/v1/predictions'")
    out.print(f"Dashboard: {receiver_url}/dashboard (sign in with the lookup API key)")


def _serve_until_interrupted(out: Console, servers: Sequence[LoopbackServer]) -> None:
    out.print("Both servers keep running; press Ctrl-C to stop them.")
    try:
        while all(server.alive for server in servers):
            time.sleep(0.2)
    except KeyboardInterrupt:
        # The expected way out: the demo's result stands, not 130.
        out.print("Stopping.")

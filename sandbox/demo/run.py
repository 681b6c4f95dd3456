"""One demo run: check the options, start both servers, send the samples through the real
`Submitter`, wait for their callbacks through the receiver's lookup API, print the result.

Results are read with `submit.lookup`, the code `vlm-submit` reads them with.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import FrameType

import httpx
import sqlalchemy as sa
from rich.console import Console
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from sandbox.demo.report import (
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    DemoRow,
    demo_row,
    print_exports,
    print_lookups,
    report_outcome,
    result_table,
)
from sandbox.demo.servers import DemoSecrets, DemoServers, serve_until_interrupted, start_servers
from sandbox.errors import DemoError, SandboxError
from sandbox.faults import FaultPlan, parse_faults
from sandbox.samples import SAMPLE_DOMAINS, sample_paths
from sandbox.settings import SandboxConfig
from schemas.contract import RequestMetadata
from submit.client import ReceiverClient, VlmRunClient
from submit.errors import SubmitError
from submit.images import expand_image_inputs
from submit.lookup import DatabaseSource, ReceiverSource, is_terminal, wait_for_predictions
from submit.reconcile import reconcile_once
from submit.submitter import SubmitItem, SubmitResult, Submitter
from vlmhooks.cli_args import table_width
from vlmhooks.errors import VlmhooksError
from vlmhooks.store import migrate
from vlmhooks.store.db import make_engine
from vlmhooks.trust.tokens import CallbackTokens

__all__ = ["MAX_COUNT", "DemoOptions", "run_demo"]

MAX_COUNT = 1000
DATABASE_NAME = "vlmhooks.db"
POLL_INTERVAL_SECONDS = 0.05
# Each reconcile pass reads every unsettled prediction from the API: poll it less eagerly.
RECONCILE_INTERVAL_SECONDS = 0.2
# Once every prediction is terminal, late callbacks (duplicates, stale `running`) get this long
# to land, so the table's callback counts are the whole story rather than a snapshot.
SETTLE_SECONDS = 5.0


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    """The `vlm-sandbox demo` command line, as values; `faults` None keeps the sandbox's own."""

    timeout: float  # seconds for the whole run, start-up to the last callback
    database: Path | None = None
    faults: str | None = None
    count: int = 1
    keep_running: bool = False


@dataclass(frozen=True)
class Sent:
    """One submitted sample: the submitter's result and which file it was."""

    sample: str
    result: SubmitResult


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
    out = out or Console(width=table_width(), highlight=False, markup=False, soft_wrap=True)
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

        servers = start_servers(stack, config, plan, database_url, demo_secrets)
        receiver_url = servers.receiver.url
        err.print(f"vlm-sandbox demo: sandbox API {servers.api_url} (faults: {plan.to_text()})")
        temporary = " (temporary)" if options.database is None else ""
        err.print(f"vlm-sandbox demo: receiver {receiver_url}, database {database}{temporary}")

        api = stack.enter_context(VlmRunClient(demo_secrets.sandbox_api_key, servers.api_url))
        receiver = ReceiverSource(
            stack.enter_context(ReceiverClient(receiver_url, demo_secrets.lookup_api_key))
        )
        tokens = CallbackTokens([demo_secrets.callback_token_key])
        err.print(
            f"vlm-sandbox demo: submitting {len(samples) * options.count} images "
            "(batch, signed callback URLs) and waiting for their callbacks..."
        )
        sent = _submit(api, engine, tokens, receiver_url, samples, options.count)
        prediction_ids = [s.result.prediction_id for s in sent if s.result.prediction_id]
        if plan.drop:
            pending = _heal_by_reconcile(api, engine, prediction_ids, deadline, err)
        else:
            pending = wait_for_predictions(
                receiver,
                prediction_ids,
                timeout=max(0.0, deadline - time.monotonic()),
                poll_interval=POLL_INTERVAL_SECONDS,
            ).pending
        if not pending:
            _settle_deliveries(servers, demo_secrets, plan, prediction_ids)

        rows = _read_rows(DatabaseSource(engine), sent)
        out.print(result_table(rows, out.width))
        code = report_outcome(
            out,
            err,
            rows,
            pending,
            timeout=options.timeout,
            dropped=plan.drop,
            elapsed=time.monotonic() - started,
        )
        print_lookups(
            out,
            rows,
            database,
            temporary=options.database is None,
            receiver_url=receiver_url if options.keep_running else None,
            lookup_api_key=demo_secrets.lookup_api_key,
        )
        if options.keep_running:
            print_exports(
                out,
                api_url=servers.api_url,
                receiver_url=receiver_url,
                database_url=database_url,
                demo_secrets=demo_secrets,
            )
            serve_until_interrupted(out, (servers.sandbox, servers.receiver))
    return code


# -- setup ----------------------------------------------------------------------------------


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


def _heal_by_reconcile(
    api: VlmRunClient,
    engine: Engine,
    prediction_ids: Sequence[str],
    deadline: float,
    err: Console,
) -> list[str]:
    """`--faults drop`: no callback will ever come, so heal the way a deploy does, with
    `vlm-submit reconcile`'s pass (poll the API, store what it holds) until all are terminal.

    The ids still not terminal at the deadline are returned, as a callback wait would.
    """
    err.print(
        "vlm-sandbox demo: --faults drop: no callback will come; healing by polling the API "
        "(`vlm-submit reconcile`)..."
    )
    source = DatabaseSource(engine)
    healed = 0
    while True:
        # older_than=0: every submission of this run is due at once.
        healed += reconcile_once(engine, api, older_than=timedelta(0)).healed
        pending = [
            prediction_id
            for prediction_id in prediction_ids
            if not is_terminal(source.prediction(prediction_id) or {})
        ]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(RECONCILE_INTERVAL_SECONDS)
    err.print(
        f"vlm-sandbox demo: reconcile healed {healed} of {len(prediction_ids)} predictions "
        "(stored with source 'poll'); in a deploy the Procfile's worker runs "
        "`vlm-submit reconcile --every 60`"
    )
    return pending


def _settle_deliveries(
    servers: DemoServers,
    demo_secrets: DemoSecrets,
    plan: FaultPlan,
    prediction_ids: Sequence[str],
) -> None:
    """Wait (briefly) until the sandbox has finished every callback it means to send.

    The first completed callback ends the wait; duplicates and stale ones come after it.
    """
    if plan.drop or not prediction_ids:
        return
    config = servers.sandbox_config
    messages = 2 if plan.out_of_order or config.deliver_intermediate else 1
    expected = plan.duplicate * messages
    wanted = set(prediction_ids)
    # The delay fault sleeps once before each message (its copies follow at once).
    deadline = time.monotonic() + SETTLE_SECONDS + plan.delay * messages
    headers = {"Authorization": f"Bearer {demo_secrets.sandbox_api_key}"}
    with httpx.Client(base_url=servers.api_url, headers=headers, timeout=10) as http:
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


def _read_rows(source: DatabaseSource, sent: Sequence[Sent]) -> list[DemoRow]:
    """This run's submissions as the receiver stored them, in submission order."""
    rows = []
    for item in sent:
        submission_id = item.result.submission_id
        rows.append(
            demo_row(
                item.sample,
                str(SAMPLE_DOMAINS.get(item.sample, "")),
                item.result,
                source.submission(submission_id),
                source.deliveries(submission_id),
            )
        )
    return rows

"""Ingest throughput and latency: the full receiver vs a bare endpoint vs a textbook receiver.

    python -m bench.ingest --duration 15 --connections 32            # SQLite, 1 worker
    python -m bench.ingest --database postgres --workers 2 --targets receiver
    python -m bench.ingest --targets bare,textbook,receiver@/tmp/before,receiver
    python -m bench.ingest --pin --targets sketch,receiver --ids ordered

Needs `wrk` (apt-get install wrk). Prints a Markdown table for bench/README.md, with the
CPU each server spent per request during the measured run (user and kernel, all its
threads; `--threads-cpu` lists them one by one, busiest first), and the bytes it wrote per
request (bench/disk_writes.py: its process group's `write_bytes`; on PostgreSQL, the WAL).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psycopg
import sqlalchemy as sa

from bench.disk_writes import group_write_bytes, wal_bytes
from bench.harness import (
    REPO,
    RESULTS,
    load_pin,
    pin_cores,
    receiver_argv,
    receiver_env,
    run_server,
    uvicorn_argv,
)
from bench.payloads import signed_callbacks
from bench.server_cpu import ThreadCpu, cpu_per_request, thread_times
from vlmhooks.store import migrate
from vlmhooks.store.db import make_engine

LUA = Path(__file__).with_name("post_callbacks.lua")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH_DB = "vlmhooks_bench"


@dataclass
class Result:
    target: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    rows: int | None
    # Bytes written per request over the measured run: the server's process group's
    # `write_bytes` (SQLite) or PostgreSQL's WAL bytes.
    written_per_request: float | None = None
    # The server's CPU per request over the measured run, by thread, busiest first.
    cpu: list[ThreadCpu] = field(default_factory=list)

    @property
    def user_us(self) -> float:
        return sum(thread.user_us for thread in self.cpu)

    @property
    def system_us(self) -> float:
        return sum(thread.system_us for thread in self.cpu)


# The request file every closed-loop bench replays by default: one file, written once, serves
# them all (bench.ingest_cpu and bench.openloop read the same one).
REQUESTS_FILE_SIZE = 200_000


def write_requests(count: int, ids: Literal["uuid", "ordered"] = "uuid") -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    # v2: one callback URL per prediction (a URL binds to its first prediction); v3: random
    # UUID prediction ids, ULID submission ids, `created_at` moving forward.
    path = RESULTS / f"callbacks-v3-{ids}-{count}.tsv"
    if not path.exists():
        with path.open("wb") as out:
            for callback in signed_callbacks(count, ids=ids):
                line = f"{callback.path}\t{callback.signature}\t".encode() + callback.body + b"\n"
                out.write(line)
    return path


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk_command(
    url: str,
    requests_file: Path,
    *,
    threads: int,
    connections: int,
    duration: int,
    skip: int = 0,
) -> list[str]:
    """wrk replaying `requests_file`'s signed callbacks (post_callbacks.lua) from line
    `skip` on, on the load's core when pinned."""
    return [
        *load_pin(), "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s",
        "--latency", "-s", str(LUA), url, "--", str(requests_file), str(threads), str(skip),
    ]  # fmt: skip


def run_wrk(
    url: str, requests_file: Path, args: argparse.Namespace, duration: int, skip: int = 0
) -> str:
    command = wrk_command(
        url,
        requests_file,
        threads=args.threads,
        connections=args.connections,
        duration=duration,
        skip=skip,
    )
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def measured_from(requests: int) -> int:
    """Where the measured run starts in the request file: the warm-up sends from the first
    line (2 s, far fewer than a quarter of the file at this machine's rates), the measured
    run from a quarter on, so it stores new predictions rather than duplicates of the
    warm-up's (which cost less, and are not what the API sends)."""
    return requests // 4


def parse_wrk(target: str, output: str, rows: int | None) -> Result:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s))", output, re.MULTILINE))

    def pct(key: str) -> float:
        match = re.match(r"([\d.]+)(us|ms|s)", percentiles[key])
        assert match is not None
        return _ms(match.group(1), match.group(2))

    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return Result(
        target,
        rps,
        pct("50"),
        pct("99"),
        int(non_2xx.group(1)) if non_2xx else 0,
        sum(int(g) for g in socket_errors.groups()) if socket_errors else 0,
        rows,
    )


def fresh_database(
    kind: str, workdir: Path, pg_name: str = PG_BENCH_DB, *, migrated: bool = True
) -> str:
    """An empty database; `migrated`: with the receiver's schema (the sketch makes its own)."""
    if kind == "postgres":
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {pg_name}")
        url = f"postgresql://postgres@127.0.0.1:5432/{pg_name}"
    else:
        database = workdir / "bench.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{database}"
    if migrated:
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
    return url


def count_predictions(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as connection:
        rows = int(connection.execute(sa.text("SELECT count(*) FROM prediction")).scalar_one())
    engine.dispose()
    return rows


def bench_target(
    target: str, args: argparse.Namespace, requests_file: Path, workdir: Path
) -> Result:
    return bench_target_env(target, args, requests_file, workdir, {})


def bench_target_env(
    target: str,
    args: argparse.Namespace,
    requests_file: Path,
    workdir: Path,
    extra_env: dict[str, str],
    beside: list[str] | None = None,
) -> Result:
    """One target on a fresh database; `extra_env` adds settings and `beside` a process to
    run next to it on the same database (bench.forwarding's). `target`: bare, textbook,
    receiver, or `receiver@<dir>` (the receiver of another source tree, e.g.
    `git archive <commit> | tar -x -C <dir>`, for before/after)."""
    sketch = target.startswith("sketch")
    if sketch and args.database != "sqlite":
        raise SystemExit(f"bench.ingest: {target} writes SQLite only: leave out --database")
    # The sketch creates its own minimal tables (bench/sketch.py): not the receiver's schema.
    url = fresh_database(args.database, workdir, migrated=not sketch)
    env = {**receiver_env(url), **extra_env}
    repo = REPO
    if target.startswith("receiver"):
        argv = receiver_argv(args.workers)
        _, _, other = target.partition("@")
        repo = Path(other).resolve() if other else REPO
    else:
        argv = uvicorn_argv(f"bench.apps:{target}_app")
    with contextlib.ExitStack() as stack:
        if beside is not None:
            stack.enter_context(run_server(beside, env, repo=repo))
        server = stack.enter_context(run_server(argv, env, repo=repo))
        run_wrk(server.url, requests_file, args, duration=2)  # warm-up
        written_before = _written(server.pid, args.database)
        before = thread_times(server.pid)
        output = run_wrk(
            server.url,
            requests_file,
            args,
            duration=args.duration,
            skip=measured_from(args.requests),
        )
        after = thread_times(server.pid)
        written = _written(server.pid, args.database) - written_before
    rows = None if target == "bare" else count_predictions(url)
    if args.verbose:
        print(output)
    result = parse_wrk(target, output, rows)
    done = _requests_done(output)
    result.cpu = cpu_per_request(before, after, done)
    result.written_per_request = written / done if done else None
    return result


def _written(pgid: int, database: str) -> int:
    return wal_bytes(PG_ADMIN) if database == "postgres" else group_write_bytes(pgid)


def _requests_done(output: str) -> int:
    match = re.search(r"(\d+) requests in", output)
    return int(match.group(1)) if match else 0


def add_load_arguments(parser: argparse.ArgumentParser, *, duration: int) -> None:
    """wrk's load, as every closed-loop bench takes it."""
    parser.add_argument("--duration", type=int, default=duration)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--requests", type=int, default=REQUESTS_FILE_SIZE)
    parser.add_argument("--pin", action="store_true", help="the server on CPU 0, the load on CPU 1")
    parser.add_argument(
        "--ids",
        choices=("uuid", "ordered"),
        default="uuid",
        help="random UUID prediction ids (as VLM Run's), or the older benches' ordered ones",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_arguments(parser, duration=15)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--targets", default="bare,textbook,receiver")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--threads-cpu", action="store_true", help="each server thread's CPU per request"
    )
    args = parser.parse_args()
    pin_cores(args.pin)
    if shutil.which("wrk") is None:
        raise SystemExit("bench.ingest: wrk is not installed (apt-get install wrk)")
    requests_file = write_requests(args.requests, args.ids)
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for target in args.targets.split(","):
            results[target] = bench_target(target, args, requests_file, Path(tmp))
    print(
        f"\n{args.database}, {args.workers} worker(s), {args.connections} connections, "
        f"{args.duration}s, {args.ids} ids\n"
    )
    written = "WAL KiB/req" if args.database == "postgres" else "KiB written/req"
    print(
        "| target | req/s | p50 ms | p99 ms | non-2xx | socket errors | rows "
        f"| CPU µs/req user | kernel | {written} |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results.values():
        kib = "-" if r.written_per_request is None else f"{r.written_per_request / 1024:.1f}"
        print(
            f"| {r.target} | {r.requests_per_second:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.non_2xx} | {r.socket_errors} | {r.rows if r.rows is not None else '-'} "
            f"| {r.user_us:.1f} | {r.system_us:.1f} | {kib} |"
        )
    if args.threads_cpu:
        for r in results.values():
            threads = ", ".join(f"{t.pid}/{t.tid} {t.user_us:.1f}+{t.system_us:.1f}" for t in r.cpu)
            print(f"\n{r.target}, µs/req by thread (pid/tid user+kernel): {threads}")
    if "receiver" in results:
        full = results["receiver"]
        for base in ("bare", "textbook", "sketch"):
            if base in results:
                ratio = full.requests_per_second / results[base].requests_per_second
                print(f"\nreceiver / {base}: {ratio:.2f}x throughput")
                base_written = results[base].written_per_request
                if full.written_per_request is not None and base_written:
                    print(
                        f"receiver / {base}: {full.written_per_request / base_written:.2f}x written"
                    )


if __name__ == "__main__":
    main()

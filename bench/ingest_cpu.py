"""CPU per callback of the receiver's own code, without the HTTP server: a stable figure.

Drives the ASGI app in-process (lifespan included) with `--concurrency` callbacks in
flight, on a fresh SQLite file (`synchronous=FULL`) or PostgreSQL, and prints the process
CPU time and bytes written (SQLite) per callback. HTTP parsing is left out on purpose: it
is uvicorn's, and the same for the bare endpoint. Under callgrind, run two counts and take
the difference, so that start-up drops out:

    python -m bench.ingest_cpu --count 4000
    python -m bench.ingest_cpu --count 4000 --database postgres
    python -m bench.ingest_cpu --count 4000 --profile /tmp/ingest.pstats
    python -m bench.ingest_cpu --count 4000 --app sketch   # issue 13's reference sketch
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p \
        python -m bench.ingest_cpu --count 1000 --repeat 2
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

from bench.disk_writes import process_write_bytes
from bench.harness import REPO, receiver_env
from bench.ingest import REQUESTS_FILE_SIZE
from bench.payloads import SignedCallback
from vlmhooks.cli_args import positive_int

# Callbacks are made once, by another process, and read from bench.ingest's request file:
# minting a token and signing a body cost about a fifth as much as receiving them, and
# under callgrind every instruction of this process counts.


async def _post(app: Any, state: dict[str, Any], callback: SignedCallback) -> int:
    body = callback.body
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": callback.path,
        "raw_path": callback.path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-vlmrun-signature", callback.signature.encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": state.copy(),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}  # the app never reads past the body

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _drive_sketch(app: Any, callbacks: list[SignedCallback], concurrency: int) -> list[int]:
    """The issue's reference sketch (bench/sketch.py) driven the same way: no lifespan."""
    statuses: list[int] = []
    queue = iter(callbacks)

    async def worker() -> None:
        for callback in queue:
            statuses.append(await _post(app, {}, callback))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def _drive(app: Any, callbacks: list[SignedCallback], concurrency: int) -> list[int]:
    from receiver.state import SHUTDOWN_HOOK

    state: dict[str, Any] = {}
    statuses: list[int] = []
    async with app.router.lifespan_context(app) as lifespan_state:
        state.update(lifespan_state or {})
        queue = iter(callbacks)

        async def worker() -> None:
            for callback in queue:
                statuses.append(await _post(app, state, callback))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        state[SHUTDOWN_HOOK]()  # what `vlm-receiver serve` calls as it begins to stop
    return statuses


def _load_callbacks(count: int) -> list[SignedCallback]:
    """The first `count` of bench.ingest's signed callbacks, from its request file (written
    by a child process when missing, so that the work stays out of this one's count)."""
    size = max(count, REQUESTS_FILE_SIZE)
    script = f"from bench.ingest import write_requests; print(write_requests({size}))"
    written = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, check=True, capture_output=True, text=True
    )
    callbacks = []
    with open(written.stdout.strip(), "rb") as lines:
        for line in itertools.islice(lines, count):
            path, signature, body = line.rstrip(b"\n").split(b"\t", 2)
            callbacks.append(SignedCallback(path.decode(), body, signature.decode()))
    return callbacks


def app_runs(app: str, runs: int) -> Iterator[Callable[[list[SignedCallback], int], list[int]]]:
    """One callable per run, for `app` ("receiver" or "sketch") on the database the
    environment names: each drives its callbacks through the app in a fresh event loop and
    returns their statuses. The receiver is built once, so later runs find it warm (its
    lifespan runs each time); the sketch is built per run, since its committer task lives
    on the event loop of the run that made it."""
    if app == "sketch":
        from bench.sketch import sketch_asgi_app

        for _ in range(runs):
            yield functools.partial(_run, _drive_sketch, sketch_asgi_app())
        return
    from receiver.app import create_app
    from vlmhooks.settings import load_settings

    receiver = create_app(load_settings())
    for _ in range(runs):
        yield functools.partial(_run, _drive, receiver)


def _run(
    drive: Callable[[Any, list[SignedCallback], int], Coroutine[Any, Any, list[int]]],
    app: Any,
    callbacks: list[SignedCallback],
    concurrency: int,
) -> list[int]:
    return asyncio.run(drive(app, callbacks, concurrency))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=positive_int, default=4000)
    parser.add_argument("--concurrency", type=positive_int, default=32)
    parser.add_argument("--repeat", type=positive_int, default=1, help="runs on the same app")
    parser.add_argument(
        "--database",
        default="sqlite",
        help="sqlite or postgres (a fresh database each invocation), or a PostgreSQL URL",
    )
    parser.add_argument("--profile", type=Path, help="write cProfile stats of the last run")
    parser.add_argument(
        "--app",
        choices=("receiver", "sketch"),
        default="receiver",
        help="the receiver, or issue 13's reference sketch as plain ASGI (SQLite only)",
    )
    args = parser.parse_args()
    if args.app == "sketch" and args.database != "sqlite":
        parser.error("the sketch writes SQLite only: leave out --database")
    with tempfile.TemporaryDirectory() as tmp:
        from bench.ingest import fresh_database
        from vlmhooks.store import migrate
        from vlmhooks.store.db import make_engine

        if args.database in ("sqlite", "postgres"):
            # The sketch makes its own minimal tables (bench/sketch.py).
            url = fresh_database(args.database, Path(tmp), migrated=args.app != "sketch")
        else:
            url = args.database
            engine = make_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
        os.environ.update(receiver_env(url))
        every = _load_callbacks(args.count * args.repeat)
        for run, drive in enumerate(app_runs(args.app, args.repeat)):
            callbacks = every[run * args.count : (run + 1) * args.count]
            profiler = cProfile.Profile() if args.profile and run == args.repeat - 1 else None
            written = process_write_bytes()
            cpu, wall = time.process_time(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            statuses = drive(callbacks, args.concurrency)
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.profile)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            written = process_write_bytes() - written
            bad = [s for s in statuses if s != 200]
            print(
                f"run {run + 1}: {len(statuses)} callbacks, {len(bad)} not 200, "
                f"CPU {cpu / len(statuses) * 1e6:.1f} µs/callback, "
                f"wall {len(statuses) / wall:,.0f}/s, "
                f"written {written / len(statuses) / 1024:.1f} KiB/callback"
            )


if __name__ == "__main__":
    main()

"""Two builds of the receiver served at once, on one core, under equal load: which one does
more with the same CPU.

    python -m bench.side_by_side /tmp/base /work/main --duration 15 --rounds 3

`--database postgres` gives each build a database of its own on the local server.

Run one after the other, two builds' throughputs differ by 20% and more on this shared
machine from minute to minute, even for the same code (bench/README.md, "Issue 13, seventh
pass"). Here both servers are pinned to CPU 0 and loaded at the same time by two wrk
processes on CPU 1, each with half the connections: whatever slows the machine slows both,
and the scheduler shares the core between them. The ratio of their throughputs is the
inverse ratio of their CPU per callback, up to how evenly the core is shared. Each round
swaps which build starts first, and each gets a fresh SQLite database.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.harness import pin_cores, receiver_argv, receiver_env, run_server
from bench.ingest import (
    PG_BENCH_DB,
    REQUESTS_FILE_SIZE,
    fresh_database,
    parse_wrk,
    write_requests,
    wrk_command,
)


def one_round(
    trees: list[Path],
    requests_file: Path,
    connections: int,
    duration: int,
    workdir: Path,
    database: str = "sqlite",
) -> list[float]:
    """Callbacks per second of each tree, loaded at the same time."""
    with contextlib.ExitStack() as stack:
        servers = []
        for index, tree in enumerate(trees):
            # Each tree its own database: on PostgreSQL, two databases of one server.
            url = fresh_database(database, workdir / str(index), pg_name=f"{PG_BENCH_DB}_{index}")
            argv = receiver_argv(1, tree)
            servers.append(stack.enter_context(run_server(argv, receiver_env(url), repo=tree)))
        half = connections // len(trees)
        for server in servers:  # warm-up, one at a time
            subprocess.run(
                wrk_command(server.url, requests_file, threads=1, connections=half, duration=2),
                check=True,
                capture_output=True,
            )
        loads = [
            subprocess.Popen(
                wrk_command(
                    server.url, requests_file, threads=1, connections=half, duration=duration
                ),
                stdout=subprocess.PIPE,
                text=True,
            )
            for server in servers
        ]
        outputs = [load.communicate()[0] for load in loads]
    return [
        parse_wrk(str(tree), output, None).requests_per_second
        for tree, output in zip(trees, outputs, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="a source tree (e.g. git archive <commit>)")
    parser.add_argument("b", type=Path, help="another source tree")
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32, help="in all, split evenly")
    parser.add_argument("--requests", type=int, default=REQUESTS_FILE_SIZE)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    pin_cores(True)
    requests_file = write_requests(args.requests)
    trees = [args.a.resolve(), args.b.resolve()]
    print("| round | a callbacks/s | b callbacks/s | b / a |")
    print("| ---: | ---: | ---: | ---: |")
    ratios = []
    for round_number in range(args.rounds):
        # Which build is started and loaded first alternates from round to round.
        order = [0, 1] if round_number % 2 == 0 else [1, 0]
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            for index in order:
                (workdir / str(index)).mkdir()
            served = one_round(
                [trees[index] for index in order],
                requests_file,
                args.connections,
                args.duration,
                workdir,
                args.database,
            )
        rate_a, rate_b = (served[order.index(index)] for index in (0, 1))
        ratios.append(rate_b / rate_a)
        print(f"| {round_number + 1} | {rate_a:,.0f} | {rate_b:,.0f} | {rate_b / rate_a:.3f} |")
    print(f"\na = {trees[0]}\nb = {trees[1]}\nmedian b / a: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()

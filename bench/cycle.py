"""Where a SQLite batch's time goes under closed-loop load, and who is busy meanwhile.

    python -m bench.cycle --repo /tmp/before        # another tree (git archive <commit>)
    python -m bench.cycle                           # this tree

wrk drives the receiver as bench.ingest does (32 connections, signed 1.5 KB callbacks,
`synchronous=FULL`, 1 worker) while `bench/cycle_probe.py` times each batch inside the
server: the whole cycle (queued batch taken to its writes settled), and the time spent in
opening (BEGIN IMMEDIATE and the reads), planning, the statements and the COMMIT, each as
wall time and as its thread's CPU: wall minus CPU is time spent waiting, for the GIL or for
the disk. What is left of the cycle is hand-offs: waits for the helper thread, for the GIL,
and for the event loop to get back to the batch. It also prints each server thread's CPU
and the whole machine's, which tell a latency-bound receiver from a CPU-bound one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import REPO, pin_cores, receiver_env, run_server
from bench.ingest import (
    REQUESTS_FILE_SIZE,
    fresh_database,
    measured_from,
    run_wrk,
    write_requests,
)

PROBE = Path(__file__).with_name("cycle_probe.py")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of `pid`: the main one runs the event loop."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        name = "event loop" if int(tid) == pid else f"thread {tid}"
        found[name] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def machine_busy() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values), values[3] + values[4]  # all, idle + iowait


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pin", action="store_true", help="the server on CPU 0, the load on CPU 1")
    args = parser.parse_args()
    pin_cores(args.pin)
    requests_file = write_requests(REQUESTS_FILE_SIZE)
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "cycle.json"
        env = {**receiver_env(fresh_database("sqlite", Path(tmp))),
               "VLMHOOKS_CYCLE_STATS": str(stats)}  # fmt: skip
        argv = [sys.executable, str(PROBE), "serve", "--host", "127.0.0.1", "--port", "{port}"]
        with run_server(argv, env, repo=args.repo.resolve()) as server:
            run_wrk(server.url, requests_file, args, duration=2)  # warm-up
            cpu_before, busy_before, started = thread_cpu(server.pid), machine_busy(), time.time()
            output = run_wrk(
                server.url,
                requests_file,
                args,
                duration=args.duration,
                skip=measured_from(REQUESTS_FILE_SIZE),
            )
            elapsed = time.time() - started
            cpu_after, busy_after = thread_cpu(server.pid), machine_busy()
            time.sleep(0.5)
        rows = [json.loads(line) for line in stats.read_text().splitlines()]
        samples = [row for row in rows if started <= row[0] <= started + elapsed]
    rate = next(line for line in output.splitlines() if "Requests/sec" in line).split()[-1]
    print(f"\n{args.repo}: {rate} callbacks/s, {len(samples)} batches timed\n")
    print("| thread | CPU, % of one core |")
    print("| --- | ---: |")
    for thread, seconds in cpu_after.items():
        share = (seconds - cpu_before.get(thread, 0.0)) / elapsed * 100
        if share >= 1:
            print(f"| {thread} | {share:.0f} |")
    total, idle = (after - before for after, before in zip(busy_after, busy_before, strict=True))
    print(f"| whole machine (2 cores = 200) | {(1 - idle / total) * 200:.0f} |")
    print_phases(samples)


PHASES = (
    ("open", "open: BEGIN IMMEDIATE and reads"),
    ("plan", "plan"),
    ("write", "statements"),
    ("commit", "COMMIT (and its fsync)"),
)


def print_phases(samples: list[list[Any]]) -> None:
    """Mean wall and CPU time of each phase per batch; wall minus CPU is waiting."""
    count = len(samples) or 1
    size = sum(s[1] for s in samples) / count
    cycle = sum(s[2] for s in samples) / count

    def mean(phase: str, index: int) -> float:
        return sum(s[3].get(phase, [0.0, 0.0])[index] for s in samples) / count * 1e3

    print(f"\n{size:.1f} writes per batch; whole cycle {cycle * 1e3:.2f} ms\n")
    print("| batch phase (means) | wall ms | CPU ms |\n| --- | ---: | ---: |")
    for phase, label in PHASES:
        print(f"| {label} | {mean(phase, 0):.2f} | {mean(phase, 1):.2f} |")
    rest = cycle * 1e3 - sum(mean(phase, 0) for phase, _label in PHASES)
    print(f"| hand-offs (the rest of the cycle) | {rest:.2f} | |")
    # The tail: a batch that checkpoints the WAL inside its COMMIT holds up every request
    # queued behind it (receiver/writer/wal_checkpoints.py).
    commits = sorted(s[3].get("commit", [0.0])[0] * 1e3 for s in samples) or [0.0]
    cycles = sorted(s[2] * 1e3 for s in samples) or [0.0]

    def tail(values: list[float], share: float) -> float:
        return values[min(len(values) - 1, int(share * len(values)))]

    print("\n| per batch, ms | p50 | p99 | p99.9 | max |\n| --- | ---: | ---: | ---: | ---: |")
    for label, values in (("COMMIT wall", commits), ("cycle", cycles)):
        shares = (0.5, 0.99, 0.999)
        print(f"| {label} | " + " | ".join(f"{tail(values, q):.2f}" for q in shares)
              + f" | {values[-1]:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()

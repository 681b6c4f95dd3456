"""Receiver memory under sustained ingest: RSS after 10k callbacks vs after 1M.

    python -m bench.memory --total 1000000 --checkpoints 10000,100000,250000,500000,1000000

Closed loop over raw keep-alive connections; every callback has a unique id (a fresh
prediction row), so anything that grows per prediction shows up.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.harness import receiver_argv, receiver_env, run_server
from bench.ingest import count_predictions, fresh_database
from bench.openloop import encode_request, read_response
from bench.payloads import BENCH_WEBHOOK_SECRET, bench_tokens, callback_path, signed_callbacks
from vlmhooks.trust.signatures import sign_vlmrun


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def send(port: int, total: int, connections: int, on_progress: Callable[[int], None]) -> int:
    template = next(signed_callbacks(1, prefix="pred_mem"))
    tokens = bench_tokens()
    marker = b"pred_mem_00000000"
    sent = 0
    failures = 0
    lock = asyncio.Lock()

    async def worker() -> None:
        nonlocal sent, failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while True:
            async with lock:
                if sent >= total:
                    break
                index = sent
                sent += 1
            body = template.body.replace(marker, f"pred_mem_{index:08d}".encode())
            writer.write(
                encode_request(
                    callback_path(tokens, f"sub_mem_{index}"),
                    sign_vlmrun(BENCH_WEBHOOK_SECRET, body),
                    body,
                )
            )
            if await read_response(reader) >= 300:
                failures += 1
            on_progress(index + 1)
        writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--checkpoints", default="10000,100000,250000,500000,1000000")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    checkpoints = sorted(int(c) for c in args.checkpoints.split(",") if int(c) <= args.total)
    samples: list[tuple[int, int, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_database(args.database, Path(tmp))
        env = receiver_env(url)
        argv = receiver_argv()
        # SQLite: the WAL must stay bounded too (receiver/writer/wal_checkpoints.py).
        wal = Path(tmp) / "bench.db-wal"
        with run_server(argv, env) as server:
            started = time.perf_counter()
            pending = list(checkpoints)

            def on_progress(done: int) -> None:
                if pending and done >= pending[0]:
                    wal_mib = wal.stat().st_size / 2**20 if wal.exists() else 0.0
                    elapsed = time.perf_counter() - started
                    samples.append((pending.pop(0), rss_kib(server.pid), elapsed, wal_mib))
                    print(
                        f"{samples[-1][0]:>9,} callbacks  RSS {samples[-1][1] / 1024:7.1f} MiB  "
                        f"{samples[-1][2]:6.0f}s  WAL {wal_mib:.1f} MiB",
                        flush=True,
                    )

            failures = asyncio.run(send(server.port, args.total, args.connections, on_progress))
            final_rss = rss_kib(server.pid)
        rows = count_predictions(url)
    print(f"\nnon-2xx: {failures}; prediction rows: {rows:,}; final RSS {final_rss / 1024:.1f} MiB")
    print("| callbacks | RSS MiB | elapsed s | WAL MiB |\n| ---: | ---: | ---: | ---: |")
    for done, rss, elapsed, wal_mib in samples:
        print(f"| {done:,} | {rss / 1024:.1f} | {elapsed:.0f} | {wal_mib:.1f} |")
    if len(samples) >= 2:
        print(f"\nRSS ratio last/first: {samples[-1][1] / samples[0][1]:.2f}")


if __name__ == "__main__":
    main()

"""Open-loop load at a fixed offered rate, with latency measured from the *intended* send
time (so a stalled server cannot hide its queueing: no coordinated omission).

    python -m bench.openloop --rate 2000 --duration 20      # SQLite, 1 worker
    python -m bench.openloop --rate half --duration 20      # half the capacity, measured
    python -m bench.openloop --rate 2000 --duration 20 --bare

`--rate half` offers half of the closed-loop capacity that wrk measures on the same server
just before (32 connections, as `bench.ingest`), and measures the capacity again just after:
issue 13's "open loop at half the closed-loop capacity" in one run, where a rate fixed in
a quiet hour would be three quarters of the capacity in a busy one.

`--bare` serves bench.apps' bare endpoint instead: the floor of the measurement itself (this
generator, uvicorn and the machine's scheduling), which no receiver can beat.

Raw HTTP/1.1 over asyncio streams (keep-alive, one request in flight per connection),
because an HTTP client library would saturate a core before the server does.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.harness import REPO, pin_cores, receiver_argv, receiver_env, run_server, uvicorn_argv
from bench.ingest import (
    REQUESTS_FILE_SIZE,
    fresh_database,
    parse_wrk,
    write_requests,
    wrk_command,
)
from bench.payloads import signed_callbacks

# The closed loop that `--rate half` halves: bench.ingest's defaults.
CAPACITY_CONNECTIONS = 32
CAPACITY_THREADS = 2
CAPACITY_SKIP = 25_000  # past what the 2 s warm-up can send


def encode_request(path: str, signature: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-VLMRun-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def generate(
    port: int, requests: list[bytes], rate: float, connections: int
) -> tuple[list[float], int]:
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    latencies: list[float] = []
    failures = 0

    async def connection_worker() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (item := await queue.get()) is not None:
            intended, payload = item
            writer.write(payload)
            status = await read_response(reader)
            latencies.append(time.perf_counter() - intended)
            if status >= 300:
                failures += 1
        writer.close()

    workers = [asyncio.create_task(connection_worker()) for _ in range(connections)]
    start = time.perf_counter()
    interval = 1.0 / rate
    for index, payload in enumerate(requests):
        intended = start + index * interval
        delay = intended - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((intended, payload))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return latencies, failures


def closed_loop_capacity(url: str, seconds: int, skip: int) -> float:
    """Callbacks per second that wrk gets from the server at `url` (bench.ingest's load),
    sending the request file's callbacks from line `skip` on: each run on one server sends
    new ones, where a replay would be a cheaper duplicate."""
    command = wrk_command(
        url,
        write_requests(REQUESTS_FILE_SIZE),
        threads=CAPACITY_THREADS,
        connections=CAPACITY_CONNECTIONS,
        duration=seconds,
        skip=skip,
    )
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = parse_wrk("capacity", output, None)
    if result.non_2xx or result.socket_errors:
        raise SystemExit(f"bench.openloop: the capacity run had errors:\n{output}")
    return result.requests_per_second


def open_loop_requests(rate: float, duration: float) -> list[bytes]:
    return [
        encode_request(c.path, c.signature, c.body)
        for c in signed_callbacks(int(rate * duration), prefix="pred_open")
    ]


def offered_rate(text: str) -> float | None:
    """`--rate`: a positive number of callbacks per second, or `half` (None)."""
    if text == "half":
        return None
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if not (rate > 0 and math.isfinite(rate)):
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'half' nor a positive rate")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rate",
        type=offered_rate,
        default=2000.0,
        help="callbacks per second, or 'half': half the capacity measured just before",
    )
    parser.add_argument("--capacity-seconds", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--repo", type=Path, default=REPO, help="the source tree whose receiver is measured"
    )
    parser.add_argument("--bare", action="store_true", help="the bare endpoint: the floor")
    parser.add_argument("--pin", action="store_true", help="the server on CPU 0, the load on CPU 1")
    args = parser.parse_args()
    half = args.rate is None
    if half and args.bare:
        # The bare endpoint's capacity is more than this generator can offer in Python.
        parser.error("--rate half measures a receiver; give --bare the receiver's rate")
    if half and shutil.which("wrk") is None:
        parser.error("--rate half measures the capacity with wrk, which is not installed")
    pin_cores(args.pin)
    rate = 0.0 if half else args.rate
    requests = [] if half else open_loop_requests(rate, args.duration)
    capacity: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_database(args.database, Path(tmp))
        env = receiver_env(url)
        argv = uvicorn_argv("bench.apps:bare_app") if args.bare else receiver_argv(args.workers)
        with run_server(argv, env, repo=args.repo.resolve()) as server:
            if half:
                closed_loop_capacity(server.url, 2, skip=0)  # warm-up
                capacity.append(
                    closed_loop_capacity(server.url, args.capacity_seconds, CAPACITY_SKIP)
                )
                rate = capacity[0] / 2
                requests = open_loop_requests(rate, args.duration)
            started = time.perf_counter()
            latencies, failures = asyncio.run(
                generate(server.port, requests, rate, args.connections)
            )
            elapsed = time.perf_counter() - started
            if half:
                # Past the lines the first capacity run can have sent (with room to spare),
                # within the file.
                sent = int(capacity[0] * args.capacity_seconds * 1.5)
                skip = min(CAPACITY_SKIP + sent, REQUESTS_FILE_SIZE // 2)
                capacity.append(closed_loop_capacity(server.url, args.capacity_seconds, skip))
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    served = "the bare endpoint" if args.bare else f"{args.database}, {args.workers} worker(s)"
    print(
        f"\noffered {rate:,.0f}/s for {args.duration}s ({served}); "
        f"achieved {len(latencies) / elapsed:,.0f}/s"
    )
    if capacity:
        before, after = capacity
        print(
            f"closed-loop capacity {before:,.0f}/s before, {after:,.0f}/s after: "
            f"offered {rate / before:.2f}x and {rate / after:.2f}x of it"
        )
    print("| offered/s | sent | non-2xx | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | mean ms |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {rate:,.0f} | {len(latencies)} | {failures} | {pct(50):.2f} | {pct(90):.2f} | "
        f"{pct(99):.2f} | {pct(99.9):.2f} | {latencies[-1] * 1000:.2f} | "
        f"{statistics.fmean(latencies) * 1000:.2f} |"
    )


if __name__ == "__main__":
    main()

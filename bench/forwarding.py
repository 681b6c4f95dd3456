"""Forwarding's cost and speed: ingest throughput with one HTTP destination vs none (same
run, fresh database each), and commit-to-destination latency at a fixed offered rate.

    python -m bench.forwarding --duration 15 --rate 500                 # SQLite, 1 worker
    python -m bench.forwarding --database postgres --workers 2

Latency is measured from the moment the load generator holds the 2xx (the change is
committed by then) to the moment the sink (another process) receives the forwarded POST;
both read the same wall clock. Needs `wrk`.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.harness import ContentLengthServer, receiver_argv, receiver_env, run_server
from bench.ingest import (
    REQUESTS_FILE_SIZE,
    Result,
    bench_target_env,
    fresh_database,
    write_requests,
)
from bench.openloop import encode_request, read_response
from bench.payloads import signed_callbacks

# whsec_ + base64("bench-forwarding-secret"): the sink does not verify, the relay signs.
FORWARD_SECRET = "whsec_YmVuY2gtZm9yd2FyZGluZy1zZWNyZXQ="


class SinkProtocol(ContentLengthServer):
    """The destination: 204 at once, arrival time and body kept in memory."""

    def __init__(self, arrivals: list[tuple[float, bytes]]) -> None:
        super().__init__()
        self.arrivals = arrivals

    def answer(self, body: bytes) -> bytes:
        self.arrivals.append((time.time(), body))
        return b"HTTP/1.1 204 No Content\r\n\r\n"


def run_sink(port: int, out: Path) -> None:
    """`python -m bench.forwarding --sink PORT OUT`: serve until SIGTERM, then write
    `time<TAB>prediction id` per request to OUT."""
    arrivals: list[tuple[float, bytes]] = []

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        server = await loop.create_server(lambda: SinkProtocol(arrivals), "127.0.0.1", port)
        async with server:
            await stop.wait()

    asyncio.run(serve())
    lines = (f"{at}\t{orjson.loads(body)['data']['id']}\n" for at, body in arrivals)
    out.write_text("".join(lines))


def relay_argv() -> list[str]:
    """`vlm-receiver forward`, listening (for metrics) so the harness knows it is up."""
    return ["vlm-receiver", "forward", "--metrics-port", "{port}"]


def sink_argv(out: Path) -> list[str]:
    return [sys.executable, "-m", "bench.forwarding", "--sink", "{port}", str(out)]


def forwarding_env(sink_url: str) -> dict[str, str]:
    return {"VLMHOOKS_FORWARD_TO": f"{sink_url}/hook", "VLMHOOKS_FORWARD_SECRET": FORWARD_SECRET}


async def open_loop(port: int, requests: list[bytes], rate: float, connections: int) -> list[float]:
    """Sends at `rate`; returns, per request index, the wall-clock time its 2xx arrived."""
    acked = [0.0] * len(requests)
    queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (item := await queue.get()) is not None:
            index, payload = item
            writer.write(payload)
            if await read_response(reader) < 300:
                acked[index] = time.time()
        writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.perf_counter()
    for index, payload in enumerate(requests):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((index, payload))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return acked


def latency(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    count = int(args.rate * args.latency_duration)
    callbacks = list(signed_callbacks(count, prefix="pred_fwd"))
    requests = [encode_request(c.path, c.signature, c.body) for c in callbacks]
    out = workdir / "arrivals.tsv"
    database_url = fresh_database(args.database, workdir)
    with run_server(sink_argv(out), {}) as sink:
        env = {**receiver_env(database_url), **forwarding_env(sink.url)}
        with run_server(receiver_argv(args.workers), env) as receiver:
            acked = asyncio.run(open_loop(receiver.port, requests, args.rate, args.connections))
            time.sleep(args.drain)  # let the relay finish before the sink writes its log
    first: dict[str, float] = {}
    for line in out.read_text().splitlines():
        at, prediction_id = line.split("\t")
        first.setdefault(prediction_id, float(at))
    delays = sorted(
        first[f"pred_fwd_{i:08d}"] - acked[i]
        for i in range(count)
        if acked[i] and f"pred_fwd_{i:08d}" in first
    )

    def pct(p: float) -> float:
        return delays[min(len(delays) - 1, int(p / 100 * len(delays)))] * 1000

    return {
        "sent": count,
        "acked": sum(1 for a in acked if a),
        "forwarded": len(first),
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "max": delays[-1] * 1000,
    }


def throughput(args: argparse.Namespace, workdir: Path) -> None:
    """Alternating runs (none, one, none, one, ...): the machine's background load drifts,
    and alternating spreads the drift over both sides; the ratio is of the medians."""
    requests_file = write_requests(args.requests)
    runs: dict[str, list[Result]] = {"none": [], "one HTTP": []}
    with run_server(sink_argv(workdir / "throughput-arrivals.tsv"), {}) as sink:
        for _ in range(args.repeats):
            runs["none"].append(bench_target_env("receiver", args, requests_file, workdir, {}))
            with_one = forwarding_env(sink.url)
            if args.relay == "process":
                with_one["VLMHOOKS_FORWARD_IN_SERVE"] = "false"
            runs["one HTTP"].append(
                bench_target_env(
                    "receiver",
                    args,
                    requests_file,
                    workdir,
                    with_one,
                    beside=relay_argv() if args.relay == "process" else None,
                )
            )
    print(
        f"\n{args.database}, {args.workers} worker(s), {args.connections} connections, "
        f"{args.duration}s per run, {args.repeats} runs each, relay in {args.relay}"
    )
    print("| destinations | req/s per run | median req/s | median p50 ms | median p99 ms |")
    print("| --- | --- | ---: | ---: | ---: |")
    medians = {}
    for name, results in runs.items():
        rates = [r.requests_per_second for r in results]
        medians[name] = statistics.median(rates)
        print(
            f"| {name} | {', '.join(f'{rate:,.0f}' for rate in rates)} | "
            f"{medians[name]:,.0f} | {statistics.median(r.p50_ms for r in results):.2f} | "
            f"{statistics.median(r.p99_ms for r in results):.2f} |"
        )
    ratio = medians["one HTTP"] / medians["none"]
    print(f"\nwith one HTTP destination / without: {ratio:.2f}x (target >= 0.90x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sink", nargs=2, metavar=("PORT", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=int, default=15, help="each throughput run, s")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--requests", type=int, default=REQUESTS_FILE_SIZE)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--latency-duration", type=float, default=20)
    parser.add_argument("--drain", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--relay",
        choices=["serve", "process"],
        default="serve",
        help="relay inside `serve` (default) or as `vlm-receiver forward` beside it",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    if args.sink:
        run_sink(int(args.sink[0]), Path(args.sink[1]))
        return
    if shutil.which("wrk") is None:
        raise SystemExit("bench.forwarding: wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.skip_throughput:
            throughput(args, workdir)
        figures = latency(args, workdir)
        print(
            f"\ncommit -> destination at {args.rate:,.0f}/s offered for {args.latency_duration}s: "
            f"sent {figures['sent']}, acked {figures['acked']}, forwarded {figures['forwarded']}; "
            f"p50 {figures['p50']:.1f} ms, p90 {figures['p90']:.1f} ms, "
            f"p99 {figures['p99']:.1f} ms, max {figures['max']:.1f} ms"
        )


if __name__ == "__main__":
    main()

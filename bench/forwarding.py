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
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.harness import receiver_argv, receiver_env, run_server, uvicorn_argv
from bench.ingest import bench_target_env, fresh_database, write_requests
from bench.openloop import encode_request, read_response
from bench.payloads import signed_callbacks

SINK_OUT = "BENCH_SINK_OUT"
# whsec_ + base64("bench-forwarding-secret"): the sink does not verify, the relay signs.
FORWARD_SECRET = "whsec_YmVuY2gtZm9yd2FyZGluZy1zZWNyZXQ="


def sink_app() -> Starlette:
    """The destination: 204 at once, arrival time per prediction id, written at shutdown."""
    arrivals: list[tuple[float, str, str]] = []

    async def hook(request: Request) -> Response:
        at = time.time()
        data = orjson.loads(await request.body())["data"]
        arrivals.append((at, data["id"], request.headers["webhook-id"]))
        return Response(status_code=204)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        lines = "".join(f"{at}\t{pid}\t{mid}\n" for at, pid, mid in arrivals)
        # At shutdown, once: nothing else is waiting on this loop any more.
        await asyncio.to_thread(Path(os.environ[SINK_OUT]).write_text, lines)

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])], lifespan=lifespan)


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
    with run_server(uvicorn_argv("bench.forwarding:sink_app"), {SINK_OUT: str(out)}) as sink:
        env = {**receiver_env(database_url), **forwarding_env(sink.url)}
        with run_server(receiver_argv(args.workers), env) as receiver:
            acked = asyncio.run(open_loop(receiver.port, requests, args.rate, args.connections))
            time.sleep(args.drain)  # let the relay finish before the sink writes its log
    first: dict[str, float] = {}
    for line in out.read_text().splitlines():
        at, prediction_id, _message_id = line.split("\t")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="each throughput run, s")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--latency-duration", type=float, default=20)
    parser.add_argument("--drain", type=float, default=3.0)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench.forwarding: wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.skip_throughput:
            requests_file = write_requests(args.requests)
            none = bench_target_env("receiver", args, requests_file, workdir, {})
            sink_out = {SINK_OUT: str(workdir / "throughput-arrivals.tsv")}
            with run_server(uvicorn_argv("bench.forwarding:sink_app"), sink_out) as sink:
                one = bench_target_env(
                    "receiver", args, requests_file, workdir, forwarding_env(sink.url)
                )
            print(f"\n{args.database}, {args.workers} worker(s), {args.connections} connections")
            print("| destinations | req/s | p50 ms | p99 ms | non-2xx | rows |")
            print("| --- | ---: | ---: | ---: | ---: | ---: |")
            for name, r in (("none", none), ("one HTTP", one)):
                print(
                    f"| {name} | {r.requests_per_second:,.0f} | {r.p50_ms:.2f} | "
                    f"{r.p99_ms:.2f} | {r.non_2xx} | {r.rows} |"
                )
            ratio = one.requests_per_second / none.requests_per_second
            print(f"\nwith one HTTP destination / without: {ratio:.2f}x (target >= 0.90x)")
        figures = latency(args, workdir)
        print(
            f"\ncommit -> destination at {args.rate:,.0f}/s offered for {args.latency_duration}s: "
            f"sent {figures['sent']}, acked {figures['acked']}, forwarded {figures['forwarded']}; "
            f"p50 {figures['p50']:.1f} ms, p90 {figures['p90']:.1f} ms, "
            f"p99 {figures['p99']:.1f} ms, max {figures['max']:.1f} ms"
        )


if __name__ == "__main__":
    main()

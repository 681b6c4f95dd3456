"""Fan-out cost: CPU per callback and peak RSS with 0, 10 and 100 SSE subscribers, one
8 MiB event sent to 16 subscribers, and the CPU of 200 idle `?wait=60` long polls.

    python -m bench.fanout                              # SQLite; the figures in bench/README.md
    python -m bench.fanout --database postgres
    python -m bench.fanout --source /tmp/before         # another checkout, for a comparison

Each scenario runs a fresh `vlm-receiver serve` (one worker) and reads its CPU time and
peak RSS from /proc. Subscribers are fast readers (they discard what they read).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from bench.harness import REPO, Server, run_server
from bench.ingest import fresh_database
from bench.openloop import encode_request, read_response
from bench.payloads import (
    BENCH_SECRET_KEY,
    BENCH_SUBMISSION_ID,
    BENCH_WEBHOOK_SECRET,
    signed_callbacks,
)
from vlmhooks.trust.signatures import sign_vlmrun
from vlmhooks.trust.tokens import CallbackTokens

CALLBACKS = 1000
SENDERS = 4
IDLE_POLLS = 200
IDLE_SECONDS = 10.0
BIG_EVENT_BYTES = 8 * 1024 * 1024
BIG_EVENT_SUBSCRIBERS = 16


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def status_kib(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {name}")


@contextmanager
def receiver(
    database: str, source: Path, workdir: Path, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    url = fresh_database(database, workdir)
    env = {
        **(extra_env or {}),
        "DATABASE_URL": url,
        "VLMHOOKS_SECRET_KEYS": BENCH_SECRET_KEY,
        "VLMHOOKS_VLMRUN_WEBHOOK_SECRETS": BENCH_WEBHOOK_SECRET,
        "VLMHOOKS_ALLOW_ANONYMOUS_READS": "true",
        "VLMHOOKS_LOG_LEVEL": "warning",
    }
    # -c with the checkout first on sys.path: the harness runs servers from this repository.
    launcher = (
        f"import sys; sys.path.insert(0, {str(source)!r}); from receiver.ops.cli import main; "
    )
    launcher += "sys.exit(main())"
    argv = [sys.executable, "-c", launcher, "serve", "--host", "127.0.0.1",
            "--port", "{port}", "--workers", "1"]  # fmt: skip
    with run_server(argv, env) as server:
        yield server


class Subscriber:
    """One SSE stream read as fast as it arrives; counts the events."""

    def __init__(self) -> None:
        self.events = 0
        self.started = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def run(self, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer = writer
        writer.write(b"GET /v1/events HTTP/1.1\r\nhost: bench\r\n\r\n")
        tail = b""
        while True:
            chunk = await reader.read(1 << 20)
            if not chunk:
                return
            if b"retry:" in tail + chunk:
                self.started.set()
            self.events += (tail + chunk).count(b"\nevent: ")
            tail = chunk[-16:]


async def open_subscribers(port: int, count: int) -> list[Subscriber]:
    subscribers = [Subscriber() for _ in range(count)]
    for subscriber in subscribers:
        subscriber.task = asyncio.create_task(subscriber.run(port))
    await asyncio.gather(*(s.started.wait() for s in subscribers))
    return subscribers


def close(subscribers: list[Subscriber]) -> None:
    for subscriber in subscribers:
        if subscriber.task is not None:
            subscriber.task.cancel()
        if subscriber.writer is not None:
            subscriber.writer.close()


async def send_callbacks(port: int, requests: list[bytes], senders: int) -> None:
    queue = list(reversed(requests))

    async def sender() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while queue:
            writer.write(queue.pop())
            status = await read_response(reader)
            if status != 200:
                raise RuntimeError(f"callback answered {status}")
        writer.close()

    await asyncio.gather(*(sender() for _ in range(senders)))


async def wait_for_events(subscribers: list[Subscriber], count: int, within: float) -> None:
    deadline = time.monotonic() + within
    while any(s.events < count for s in subscribers):
        if time.monotonic() > deadline:
            raise RuntimeError("subscribers did not receive every event")
        await asyncio.sleep(0.05)


def requests_for(count: int, prefix: str) -> list[bytes]:
    return [
        encode_request(c.path, c.signature, c.body) for c in signed_callbacks(count, prefix=prefix)
    ]


async def per_callback(server: Server, subscribers: int) -> tuple[float, int]:
    streams = await open_subscribers(server.port, subscribers)
    await send_callbacks(server.port, requests_for(50, "warm"), SENDERS)
    await wait_for_events(streams, 50, 60)
    before = cpu_seconds(server.pid)
    await send_callbacks(server.port, requests_for(CALLBACKS, "fan"), SENDERS)
    await wait_for_events(streams, 50 + CALLBACKS, 120)
    spent = cpu_seconds(server.pid) - before
    close(streams)
    return spent / CALLBACKS * 1000, status_kib(server.pid, "VmHWM")


def big_callback() -> bytes:
    tokens = CallbackTokens([BENCH_SECRET_KEY], max_age_seconds=3600)
    body = orjson.dumps(
        {
            "id": "pred_big",
            "status": "completed",
            "created_at": "2026-11-24T12:00:00Z",
            "completed_at": "2026-11-24T12:00:03Z",
            "response": {"text": "x" * BIG_EVENT_BYTES},
        }
    )
    path = f"/v1/callbacks/{tokens.mint(BENCH_SUBMISSION_ID)}"
    return encode_request(path, sign_vlmrun(BENCH_WEBHOOK_SECRET, body), body)


async def big_event(server: Server, subscribers: int) -> tuple[int, int]:
    streams = await open_subscribers(server.port, subscribers)
    rss_before = status_kib(server.pid, "VmRSS")
    await send_callbacks(server.port, [big_callback()], 1)
    await wait_for_events(streams, 1, 120)
    # Until every subscriber has read the whole event (it ends with the next keep-alive).
    await asyncio.sleep(3.0)
    close(streams)
    return rss_before, status_kib(server.pid, "VmHWM")


async def idle_polls(server: Server) -> float:
    connections = []
    for index in range(IDLE_POLLS):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        target = f"/v1/predictions/never-{index}?wait=60"
        writer.write(f"GET {target} HTTP/1.1\r\nhost: b\r\n\r\n".encode())
        connections.append((reader, writer))
    await asyncio.sleep(2.0)  # every poll has made its first read and is waiting
    before = cpu_seconds(server.pid)
    await asyncio.sleep(IDLE_SECONDS)
    spent = cpu_seconds(server.pid) - before
    for _reader, writer in connections:
        writer.close()
    return spent / IDLE_SECONDS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--source", type=Path, default=REPO, help="checkout to run the receiver")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print(f"# {args.database}, receiver from {args.source}")
        print("subscribers | CPU per callback (ms) | peak RSS (MiB)")
        for subscribers in (0, 10, 100):
            with receiver(args.database, args.source, workdir) as server:
                cpu_ms, peak = asyncio.run(per_callback(server, subscribers))
            print(f"{subscribers:>11} | {cpu_ms:>21.2f} | {peak / 1024:>14.1f}")
        for subscribers in (1, BIG_EVENT_SUBSCRIBERS):
            with receiver(args.database, args.source, workdir) as server:
                before, peak = asyncio.run(big_event(server, subscribers))
            print(
                f"8 MiB event to {subscribers} subscribers: RSS {before / 1024:.1f} MiB "
                f"before, peak {peak / 1024:.1f} MiB (+{(peak - before) / 1024:.1f} MiB)"
            )
        with receiver(args.database, args.source, workdir) as server:
            share = asyncio.run(idle_polls(server))
        print(f"{IDLE_POLLS} idle ?wait=60 polls: {share * 100:.1f}% of one core")


if __name__ == "__main__":
    main()

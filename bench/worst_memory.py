"""The receiver's memory worst case, measured: callbacks at the body cap, all at once, and
connections holding a request head just under the header cap.

    python -m bench.worst_memory                     # SQLite; the figures in bench/README.md
    python -m bench.worst_memory --budgets-mib 16,32,64 --body-mib 10 --connections 900

Peak RSS is the server's VmHWM. Every body is a valid, signed callback of `--body-mib`
MiB (a long `response.text`), so the whole path runs: read, decode, validate, store.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import orjson

from bench.fanout import receiver, status_kib
from bench.harness import REPO
from bench.openloop import encode_request, read_response
from bench.payloads import BENCH_SECRET_KEY, BENCH_SUBMISSION_ID, BENCH_WEBHOOK_SECRET
from vlmhooks.trust.signatures import sign_vlmrun
from vlmhooks.trust.tokens import CallbackTokens

HEAD_BYTES = 60 * 1024


def big_request(index: int, body_bytes: int, path: str) -> bytes:
    skeleton = {
        "id": f"pred_worst_{index:05d}",
        "status": "completed",
        "created_at": "2026-11-24T12:00:00Z",
        "completed_at": "2026-11-24T12:00:03Z",
        "response": {"text": ""},
    }
    filler = body_bytes - len(orjson.dumps(skeleton)) - 64
    skeleton["response"] = {"text": "x" * filler}
    body = orjson.dumps(skeleton)
    return encode_request(path, sign_vlmrun(BENCH_WEBHOOK_SECRET, body), body)


async def concurrent_callbacks(port: int, requests: list[bytes]) -> list[int]:
    async def one(request: bytes) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        status = await read_response(reader)
        writer.close()
        return status

    return list(await asyncio.gather(*(one(request) for request in requests)))


async def held_heads(port: int, connections: int) -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(connections):
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: b\r\nx-filler: " + b"a" * HEAD_BYTES)
        writers.append(writer)
    await asyncio.sleep(2.0)  # every head is in the server's buffers
    return writers


async def unfinished_heads(port: int, count: int, size: int) -> list[int]:
    """`count` connections each sending one header of `size` bytes that never ends; returns
    how many bytes each got out before the server closed it."""

    async def one() -> int:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sent = 0
        block = b"a" * 65536
        try:
            writer.write(b"POST /v1/callbacks/x HTTP/1.1\r\nhost: b\r\nx-filler: ")
            while sent < size:
                writer.write(block)
                await asyncio.wait_for(writer.drain(), timeout=10)
                sent += len(block)
        except (ConnectionError, TimeoutError):
            pass
        writer.close()
        return sent

    return list(await asyncio.gather(*(one() for _ in range(count))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--budgets-mib", default="16,32,64", help="VLMHOOKS_CALLBACK_BYTES_IN_FLIGHT values, MiB"
    )
    parser.add_argument("--body-mib", type=float, default=10.0, help="body size (cap: 10 MiB)")
    parser.add_argument("--connections", type=int, default=900)
    args = parser.parse_args()
    body_bytes = int(args.body_mib * 1024 * 1024) - 4096
    tokens = CallbackTokens([BENCH_SECRET_KEY], max_age_seconds=3600)
    path = f"/v1/callbacks/{tokens.mint(BENCH_SUBMISSION_ID)}"
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print(f"# {args.database}; {args.body_mib:g} MiB bodies, all sent at once")
        print("budget (MiB) | callbacks | idle RSS (MiB) | peak RSS (MiB) | growth / budget")
        for budget_mib in (int(value) for value in args.budgets_mib.split(",")):
            env = {"VLMHOOKS_CALLBACK_BYTES_IN_FLIGHT": str(budget_mib * 1024 * 1024)}
            count = 3 * max(1, int(budget_mib // args.body_mib)) + 2
            with receiver(args.database, REPO, workdir, extra_env=env) as server:
                idle = status_kib(server.pid, "VmRSS")
                requests = [big_request(i, body_bytes, path) for i in range(count)]
                statuses = asyncio.run(concurrent_callbacks(server.port, requests))
                peak = status_kib(server.pid, "VmHWM")
            ratio = (peak - idle) / 1024 / budget_mib
            print(
                f"{budget_mib:>12} | {count:>9} | {idle / 1024:>14.1f} | {peak / 1024:>14.1f} "
                f"| {ratio:>15.1f}   statuses {sorted(set(statuses))}"
            )
        with receiver(args.database, REPO, workdir) as server:
            idle = status_kib(server.pid, "VmRSS")
            sent = asyncio.run(unfinished_heads(server.port, 4, 32 * 1024 * 1024))
            peak = status_kib(server.pid, "VmHWM")
        print(
            f"4 unfinished 32 MiB headers: closed after at most {max(sent) // 1024} KiB written; "
            f"RSS {idle / 1024:.1f} MiB idle, peak {peak / 1024:.1f} MiB"
        )
        with receiver(args.database, REPO, workdir) as server:
            idle = status_kib(server.pid, "VmRSS")

            async def hold() -> int:
                writers = await held_heads(server.port, args.connections)
                rss = status_kib(server.pid, "VmRSS")
                for writer in writers:
                    writer.close()
                return rss

            held = asyncio.run(hold())
        per_connection = (held - idle) / args.connections
        print(
            f"{args.connections} connections holding a {HEAD_BYTES // 1024} KiB head: "
            f"RSS {idle / 1024:.1f} -> {held / 1024:.1f} MiB ({per_connection:.0f} KiB each)"
        )


if __name__ == "__main__":
    main()

"""The receiver's memory worst case, measured: callbacks at the body cap, all at once, and
connections holding a request head just under the header cap.

    python -m bench.worst_memory                     # SQLite; the figures in bench/README.md
    python -m bench.worst_memory --slots 8,32 --body-mib 10 --connections 1000

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
from vlmhooks.signatures import sign_vlmrun
from vlmhooks.tokens import CallbackTokens

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--slots", default="8,32", help="VLMHOOKS_MAX_CONCURRENT_CALLBACKS values")
    parser.add_argument("--body-mib", type=float, default=10.0, help="body size (cap: 10 MiB)")
    parser.add_argument("--connections", type=int, default=900)
    args = parser.parse_args()
    body_bytes = int(args.body_mib * 1024 * 1024) - 4096
    tokens = CallbackTokens([BENCH_SECRET_KEY], max_age_seconds=3600)
    path = f"/v1/callbacks/{tokens.mint(BENCH_SUBMISSION_ID)}"
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print(f"# {args.database}; {args.body_mib:g} MiB bodies, twice as many as the slots")
        print("slots | idle RSS (MiB) | peak RSS (MiB) | growth per slot (MiB)")
        for slots in (int(value) for value in args.slots.split(",")):
            env = {"VLMHOOKS_MAX_CONCURRENT_CALLBACKS": str(slots)}
            with receiver(args.database, REPO, workdir, extra_env=env) as server:
                idle = status_kib(server.pid, "VmRSS")
                requests = [big_request(i, body_bytes, path) for i in range(2 * slots)]
                statuses = asyncio.run(concurrent_callbacks(server.port, requests))
                peak = status_kib(server.pid, "VmHWM")
            per_slot = (peak - idle) / 1024 / slots
            print(f"{slots:>5} | {idle / 1024:>14.1f} | {peak / 1024:>14.1f} | {per_slot:>21.1f}")
            print(f"      statuses: {sorted(set(statuses))}")
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

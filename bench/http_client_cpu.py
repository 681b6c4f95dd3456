"""CPU per POST of the forwarding HTTP client, against a server in another process.

Sends `--count` POSTs of one ~1.2 KB JSON body (the relay's headers) through one client,
`--concurrency` at a time over kept-alive connections, to a minimal raw-asyncio server this
module starts as a subprocess (`--serve`), so the server's CPU is not counted. Prints the
process CPU time per POST; under callgrind (which does not follow the server, a child), run
two counts and take the difference, so that start-up and connecting drop out:

    python -m bench.http_client_cpu --count 2000                            # this tree's client
    python -m bench.http_client_cpu --count 2000 --tree /tmp/wt_client_before  # another tree's
    python -m bench.http_client_cpu --count 2000 --client httpx
    PYTHONPATH=/tmp/aiohttp_site python -m bench.http_client_cpu --count 2000 --client aiohttp
    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.origin.2000 \
        /root/.pyenv/versions/3.11.7/bin/python3.11 -m bench.http_client_cpu --count 2000

`--tree` loads `vlmhooks/forward/http_client.py` from that tree by its path (it imports
only the standard library and httptools, before and after issue 29), so the rest of this
process is the same code for every client.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.harness import REPO, ContentLengthServer, run_server
from vlmhooks.cli_args import port_number, positive_int

CLIENTS = ("origin", "httpx", "aiohttp")
CLIENT_FILE = Path("vlmhooks/forward/http_client.py")
TIMEOUT = 30.0

# What a destination might answer: a small 200 with the headers a web framework adds.
ANSWERS = {
    200: (
        b"HTTP/1.1 200 OK\r\ndate: Mon, 07 Dec 2026 20:00:00 GMT\r\nserver: uvicorn\r\n"
        b"content-length: 2\r\ncontent-type: text/plain; charset=utf-8\r\n\r\nok"
    ),
    204: (
        b"HTTP/1.1 204 No Content\r\ndate: Mon, 07 Dec 2026 20:00:00 GMT\r\nserver: uvicorn\r\n\r\n"
    ),
}


class AnswerProtocol(ContentLengthServer):
    """Answers each request on the connection at once with the same bytes."""

    def __init__(self, answer: bytes) -> None:
        super().__init__()
        self.reply = answer

    def answer(self, body: bytes) -> bytes:
        return self.reply


def serve(port: int, status: int) -> None:
    """`python -m bench.http_client_cpu --serve --port PORT`: answer until SIGTERM."""

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        answer = ANSWERS[status]
        server = await loop.create_server(lambda: AnswerProtocol(answer), "127.0.0.1", port)
        async with server:
            await stop.wait()

    asyncio.run(run())


def webhook_body() -> bytes:
    """A prediction.completed delivery as the relay forwards it: about 1.2 KB of JSON."""
    data = {
        "type": "prediction.completed",
        "timestamp": "2026-12-07T20:00:00.000000Z",
        "data": {
            "id": "pred_0123456789abcdef0123456789abcdef",
            "status": "completed",
            "domain": "document.invoice",
            "created_at": "2026-12-07T19:59:58.120000Z",
            "completed_at": "2026-12-07T20:00:00.000000Z",
            "usage": {"credits_used": 12, "elements_processed": 3, "element_type": "page"},
            "response": {
                "invoice_id": "INV-2026-004217",
                "invoice_date": "2026-12-01",
                "due_date": "2026-12-31",
                "currency": "EUR",
                "vendor": {"name": "Acme Supplies GmbH", "address": "Hauptstr. 1, 10115 Berlin"},
                "customer": {"name": "Example Corp", "address": "1 Market St, San Francisco"},
                "items": [
                    {"description": f"Item {n}", "quantity": n, "unit_price": 9.5, "total": 9.5 * n}
                    for n in range(1, 6)
                ],
                "subtotal": 142.5,
                "tax": 27.08,
                "total": 169.58,
                "notes": "Payment by bank transfer within 30 days. " * 4,
            },
        },
    }
    return json.dumps(data, separators=(",", ":")).encode()


def relay_headers() -> dict[str, str]:
    """The headers vlmhooks.forward.http sends, with fixed values."""
    return {
        "content-type": "application/json",
        "user-agent": "vlmhooks-forward/0.1",
        "webhook-id": "msg_2Lh9Kq3mZpXy7Rt4Vb8Nc1Wd",
        "webhook-timestamp": "1796673600",
        "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
    }


def load_client_module(tree: Path | None) -> ModuleType:
    """`vlmhooks.forward.http_client` as imported here, or the one in `tree`, by its path."""
    if tree is None:
        return importlib.import_module("vlmhooks.forward.http_client")
    name = "_bench_http_client"
    spec = importlib.util.spec_from_file_location(name, tree / CLIENT_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


# One POST, the answer's status; and closing the client.
Post = Callable[[], Awaitable[int]]
Close = Callable[[], Awaitable[None]]


def make_client(
    kind: str, url: str, concurrency: int, origin_module: ModuleType | None
) -> tuple[Post, Close]:
    """Made inside the running loop (the clients bind to it)."""
    body, headers = webhook_body(), relay_headers()
    if kind == "origin":
        # Before and after issue 29 alike: OriginClient(url, *, timeout, max_connections),
        # .post(body, headers) -> .status, .aclose(). No `environ`: no proxy either way.
        assert origin_module is not None
        origin = origin_module.OriginClient(url, timeout=TIMEOUT, max_connections=concurrency)

        async def post_origin() -> int:
            return int((await origin.post(body, headers)).status)

        return post_origin, origin.aclose
    if kind == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        client = httpx.AsyncClient(timeout=TIMEOUT, limits=limits, trust_env=False)

        async def post_httpx() -> int:
            return (await client.post(url, content=body, headers=headers)).status_code

        return post_httpx, client.aclose
    aiohttp: Any = importlib.import_module("aiohttp")  # not a dependency; see the docstring
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency),
        timeout=aiohttp.ClientTimeout(total=TIMEOUT),
    )

    async def post_aiohttp() -> int:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            return int(response.status)

    return post_aiohttp, session.close


async def drive(
    kind: str, url: str, count: int, concurrency: int, origin_module: ModuleType | None = None
) -> Counter[int]:
    """`count` POSTs, `concurrency` at a time; how many got each status."""
    post, close = make_client(kind, url, concurrency, origin_module)
    statuses: Counter[int] = Counter()

    async def worker(share: int) -> None:
        for _ in range(share):
            statuses[await post()] += 1

    shares = [count // concurrency + (i < count % concurrency) for i in range(concurrency)]
    try:
        await asyncio.gather(*(worker(share) for share in shares if share))
    finally:
        await close()
    return statuses


def existing_tree(text: str) -> Path:
    tree = Path(text).resolve()
    if not (tree / CLIENT_FILE).is_file():
        raise argparse.ArgumentTypeError(f"{text!r} has no {CLIENT_FILE}")
    return tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=CLIENTS, default="origin")
    parser.add_argument("--count", type=positive_int, default=2000)
    parser.add_argument("--concurrency", type=positive_int, default=1, help="POSTs in flight")
    parser.add_argument("--tree", type=existing_tree, help="the tree whose OriginClient to use")
    parser.add_argument("--status", type=int, choices=sorted(ANSWERS), default=200)
    parser.add_argument("--serve", action="store_true", help="be the server (on --port)")
    parser.add_argument("--port", type=port_number)
    args = parser.parse_args()
    if args.serve:
        if args.port is None:
            parser.error("--serve needs --port")
        serve(args.port, args.status)
        return
    if args.tree is not None and args.client != "origin":
        parser.error(f"--tree picks the OriginClient; --client {args.client} is not from a tree")
    if args.client == "aiohttp" and importlib.util.find_spec("aiohttp") is None:
        parser.error("aiohttp is not installed (pip install --target DIR aiohttp; PYTHONPATH=DIR)")
    module = load_client_module(args.tree) if args.client == "origin" else None
    argv = [sys.executable, "-m", "bench.http_client_cpu", "--serve", "--port", "{port}"]
    with run_server([*argv, "--status", str(args.status)], {}, repo=REPO) as server:
        started = time.process_time(), time.perf_counter()
        statuses = asyncio.run(drive(args.client, server.url, args.count, args.concurrency, module))
        cpu, wall = time.process_time() - started[0], time.perf_counter() - started[1]
    source = f"OriginClient from {module.__file__}" if module else args.client
    answered = ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items()))
    print(
        f"{source}: {args.count} POSTs, {args.concurrency} at a time: {answered}; "
        f"{cpu / args.count * 1e6:.1f} µs CPU per POST, {wall:.2f} s wall"
    )
    if statuses[args.status] != args.count:
        sys.exit(f"expected {args.count} x {args.status}")


if __name__ == "__main__":
    main()

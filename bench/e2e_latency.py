"""End to end: from the sandbox marking a prediction completed to the change event reaching
an SSE subscriber of the receiver (signed callback, verification, group commit, event feed).

    python -m bench.e2e_latency --count 500 --rate 50

Both servers run as subprocesses on loopback; latency = SSE arrival - `completed_at`
(the sandbox's clock is this machine's clock).
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

from bench.harness import run_server
from bench.ingest import fresh_database
from sandbox.samples import sample_paths
from vlmhooks.trust.tokens import CallbackTokens, mint_callback_url

SECRET_KEY = "e2e-secret-key-of-thirty-two-bytes"
WEBHOOK_SECRET = "e2e-webhook-secret"
API_KEY = "e2e-lookup-key"


def subscribe(url: str, expected: int, arrivals: dict[str, float], ready: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with (
        httpx.Client(timeout=httpx.Timeout(5, read=120)) as client,
        client.stream("GET", f"{url}/v1/events", headers=headers) as stream,
    ):
        ready.set()
        event = ""
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "prediction.completed":
                data = json.loads(line[5:])
                completed = datetime.fromisoformat(data["completed_at"].replace("Z", "+00:00"))
                arrivals[data["id"]] = time.time() - completed.timestamp()
                if len(arrivals) >= expected:
                    return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50, help="submissions per second")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    image = "data:image/png;base64," + base64.b64encode(sample_paths()[0].read_bytes()).decode()
    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_database(args.database, Path(tmp))
        receiver_env = {
            "DATABASE_URL": url,
            "VLMHOOKS_SECRET_KEYS": SECRET_KEY,
            "VLMHOOKS_VLMRUN_WEBHOOK_SECRETS": WEBHOOK_SECRET,
            "VLMHOOKS_API_KEYS": API_KEY,
            "VLMHOOKS_LOG_LEVEL": "warning",
        }
        receiver_argv = ["vlm-receiver", "serve", "--host", "127.0.0.1", "--port", "{port}"]
        sandbox_env = {
            "VLMHOOKS_SANDBOX_VLMRUN_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "VLMHOOKS_SANDBOX_CONCURRENCY": "8",
        }
        sandbox_argv = [sys.executable, "-m", "sandbox.cli", "serve", "--port", "{port}"]
        with (
            run_server(receiver_argv, receiver_env) as receiver,
            run_server(sandbox_argv, sandbox_env) as sandbox,
        ):
            arrivals: dict[str, float] = {}
            ready = threading.Event()
            listener = threading.Thread(
                target=subscribe, args=(receiver.url, args.count, arrivals, ready), daemon=True
            )
            listener.start()
            ready.wait(10)
            tokens = CallbackTokens([SECRET_KEY])
            with httpx.Client(base_url=f"{sandbox.url}/v1", timeout=30) as client:
                started = time.perf_counter()
                for index in range(args.count):
                    callback = mint_callback_url(receiver.url, tokens, f"sub_e2e_{index:06d}")
                    body = {
                        "images": [image],
                        "domain": "document.invoice",
                        "batch": True,
                        "callback_url": callback,
                    }
                    client.post("/image/generate", json=body).raise_for_status()
                    delay = started + (index + 1) / args.rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
            listener.join(timeout=60)
    latencies = sorted(v * 1000 for v in arrivals.values())
    if not latencies:
        raise SystemExit("no events arrived")

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    print(f"\n{len(latencies)}/{args.count} events, {args.rate}/s, {args.database}")
    print("| events | p50 ms | p90 ms | p99 ms | max ms | mean ms |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {len(latencies)} | {pct(50):.1f} | {pct(90):.1f} | {pct(99):.1f} | "
        f"{latencies[-1]:.1f} | {statistics.fmean(latencies):.1f} |"
    )


if __name__ == "__main__":
    main()

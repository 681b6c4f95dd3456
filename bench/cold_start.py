"""Cold start of the Lambda handler, each sample in a fresh interpreter (median of N).

    python -m bench.cold_start --repeat 15                      # PostgreSQL (local server)
    python -m bench.cold_start --repeat 15 --database sqlite

1. Import time, measured in one process: `starlette.applications` + `sqlalchemy` +
   `pydantic` (the baseline), then `receiver.server.serverless` (the target: at most 0.5x the
   baseline), and, for comparison, `receiver.app` (everything a callback runs).
2. First request: a fresh process imports the handler and is invoked with an API Gateway
   HTTP API (v2) event carrying a signed callback; the first invocation builds the app and
   opens the database, the second is warm.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import REPO

BASELINE = "starlette.applications, sqlalchemy, pydantic"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

IMPORT_CHILD = """
import time
started = time.perf_counter()
import {baseline}
baseline = time.perf_counter() - started
started = time.perf_counter()
import {target}
print(baseline, time.perf_counter() - started)
"""

REQUEST_CHILD = """
import json, sys, time
events = json.loads(sys.stdin.read())
started = time.perf_counter()
from receiver.server.serverless import handler
imported = time.perf_counter()
first = handler(events[0], None)
answered = time.perf_counter()
second = handler(events[1], None)
warm = time.perf_counter()
print(json.dumps({
    "import": imported - started,
    "first": answered - imported,
    "warm": warm - answered,
    "statuses": [first["statusCode"], second["statusCode"]],
}))
"""


def _child_env(pythonpath: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("VLMHOOKS_")}
    env["PYTHONPATH"] = str(pythonpath)
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    env.update(extra or {})
    return env


def measure_imports(target: str, repeat: int, pythonpath: Path) -> tuple[float, float]:
    """Median (baseline, target) import seconds, each pair from one fresh process."""
    code = IMPORT_CHILD.format(baseline=BASELINE, target=target)
    samples = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env=_child_env(pythonpath),
        ).stdout.split()
        samples.append((float(out[0]), float(out[1])))
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def _callback_event(index: int) -> dict[str, Any]:
    from bench.payloads import BENCH_SECRET_KEY, BENCH_WEBHOOK_SECRET
    from vlmhooks.trust.signatures import sign_vlmrun
    from vlmhooks.trust.tokens import CallbackTokens

    body = json.dumps(
        {
            "id": f"pred_cold_{uuid.uuid4().hex[:8]}_{index}",
            "created_at": "2026-11-24T11:59:00Z",
            "completed_at": "2026-11-24T11:59:30Z",
            "status": "completed",
            "response": {"total": 42.5, "currency": "EUR"},
            "usage": {"elements_processed": 1, "element_type": "image", "credits_used": 1},
        }
    )
    token = CallbackTokens([BENCH_SECRET_KEY]).mint(f"sub_cold_{index}")
    path = f"/v1/callbacks/{token}"
    headers = {
        "content-type": "application/json",
        "content-length": str(len(body)),
        "host": "r2d2c3po.execute-api.eu-west-1.amazonaws.com",
        "x-vlmrun-signature": sign_vlmrun(BENCH_WEBHOOK_SECRET, body.encode()),
    }
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "http": {"method": "POST", "path": path, "sourceIp": "203.0.113.7"},
            "stage": "$default",
        },
        "body": body,
        "isBase64Encoded": False,
    }


@contextmanager
def bench_database(kind: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A migrated database and the extra environment the handler needs for it."""
    from vlmhooks.store import migrate
    from vlmhooks.store.db import make_engine

    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{Path(directory) / 'cold.db'}"
            engine = make_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
            yield url, {"VLMHOOKS_SERVERLESS_ALLOW_SQLITE": "true"}
        return
    import psycopg

    name = f"vlmhooks_bench_cold_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    url = f"{PG_ADMIN.rpartition('/')[0]}/{name}"
    try:
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url, {}
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]


def measure_first_request(kind: str, repeat: int, pythonpath: Path) -> dict[str, float]:
    from bench.harness import receiver_env

    samples: list[dict[str, Any]] = []
    with bench_database(kind) as (url, extra):
        env = _child_env(
            pythonpath,
            {**receiver_env(url), **extra, "AWS_LAMBDA_FUNCTION_NAME": "vlmhooks-bench"},
        )
        for index in range(repeat):
            events = [_callback_event(2 * index), _callback_event(2 * index + 1)]
            out = subprocess.run(
                [sys.executable, "-c", REQUEST_CHILD],
                input=json.dumps(events),
                capture_output=True,
                text=True,
                check=True,
                env=env,
            ).stdout
            sample = json.loads(out.strip().splitlines()[-1])
            if sample["statuses"] != [200, 200]:
                raise SystemExit(f"the handler answered {sample['statuses']}: {out}")
            samples.append(sample)
    return {key: statistics.median(s[key] for s in samples) for key in ("import", "first", "warm")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument(
        "--tree", type=Path, default=REPO, help="source tree to import (e.g. an older checkout)"
    )
    parser.add_argument("--imports-only", action="store_true")
    args = parser.parse_args()

    print(f"{args.repeat} fresh processes each, medians, tree {args.tree}\n")
    print("| imported after the baseline | baseline s | target s | target / baseline |")
    print("| --- | ---: | ---: | ---: |")
    targets = ["receiver.app"]
    if (args.tree / "receiver" / "serverless.py").exists():
        targets.insert(0, "receiver.server.serverless")
    for target in targets:
        baseline, extra = measure_imports(target, args.repeat, args.tree)
        print(f"| `{target}` | {baseline:.3f} | {extra:.3f} | {extra / baseline:.2f}x |")
    if args.imports_only or "receiver.server.serverless" not in targets:
        return
    timings = measure_first_request(args.database, args.repeat, args.tree)
    print(f"\nFirst request ({args.database}, signed callback, API Gateway HTTP API v2 event):\n")
    print("| handler import s | first invocation s | import + first s | warm invocation ms |")
    print("| ---: | ---: | ---: | ---: |")
    print(
        f"| {timings['import']:.3f} | {timings['first']:.3f} | "
        f"{timings['import'] + timings['first']:.3f} | {timings['warm'] * 1000:.1f} |"
    )


if __name__ == "__main__":
    main()

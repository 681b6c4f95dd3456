"""What each stage of a served callback costs: the receiver beside copies of itself that
answer early, with the CPU each spent per request.

    python -m bench.ceiling --pin --duration 10
    python -m bench.ceiling --pin --duration 8 --stages    # the request path step by step

In one run, each on a fresh SQLite database:

- `bare`: bench.apps' bare endpoint (uvicorn, one route, no work);
- `acknowledge`: this tree, answering every callback as soon as its body is read: the
  app's own layers and HTTP;
- `verify`: answering once the callback is verified, parsed, validated, hashed and its
  audit record built, without storing it: the whole request path;
- `receiver`: this tree as it is.

`--stages` adds a copy answering after each step of the request path in turn (the
token; the body and its audit record; the signature; the media type and JSON parse; the
contract), so the differences give each step's cost where it runs, caches and all: a
step timed alone in a loop costs half as much or less.

The differences bound each stage: no storage design can make the receiver cheaper than
`verify`, nor any request path cheaper than `acknowledge`. Each copy is this tree with one
edit to `receiver/ingest/callbacks.py`, made at a line it names; if that line moved, the bench
stops and says so rather than measure something else.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from bench.harness import REPO, pin_cores
from bench.ingest import Result, add_load_arguments, bench_target, write_requests

_PACKAGES = ("schemas", "vlmhooks", "receiver", "submit", "sandbox", "bench")
_ACK = '_Ack(b\'{"id":"x","status":"completed","duplicate":false,"verdict":"stored"}\')'

# (the line the edit goes after, what it adds), per variant.
VARIANTS: dict[str, tuple[str, str]] = {
    "acknowledge": (
        "    state = receiver_state(request)\n",
        f"    await request.body()\n    return {_ACK}\n",
    ),
    "verify": (
        "        content_bytes=content_bytes,\n    )\n",
        '    return _acknowledgement(IngestOutcome(prediction.id, "completed", "stored"))\n',
    ),
}


# Each answers right after the line named, inside the request path's `try`.
STAGES: dict[str, tuple[str, str]] = {
    "token": (
        '                f"callback token names a submission id over {MAX_SUBMISSION_ID_CHARS} '
        'characters"\n            )\n',
        f"        return {_ACK}\n",
    ),
    "audit record": (
        "        delivery = delivery_record(body, headers.items(), "
        "body_cap=state.settings.delivery_body_cap)\n",
        f"        return {_ACK}\n",
    ),
    "signature": ("        authenticated = True\n", f"        return {_ACK}\n"),
    "json": ("        payload = decode_json(body)\n", f"        return {_ACK}\n"),
    "contract": (
        "        prediction = validate_prediction(payload, raw=body)\n",
        f"        return {_ACK}\n",
    ),
}


def variant_tree(name: str, into: Path) -> Path:
    """A copy of this tree's packages with `name`'s edit made; the copy's root."""
    root = into / name.replace(" ", "_")
    for package in _PACKAGES:
        shutil.copytree(
            REPO / package,
            root / package,
            ignore=shutil.ignore_patterns("results", "__pycache__"),
        )
    anchor, addition = {**VARIANTS, **STAGES}[name]
    path = root / "receiver" / "ingest" / "callbacks.py"
    source = path.read_text()
    if source.count(anchor) != 1:
        raise SystemExit(
            f"bench.ceiling: {name}: receiver/ingest/callbacks.py no longer has {anchor!r}"
        )
    path.write_text(source.replace(anchor, anchor + addition))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_arguments(parser, duration=10)
    parser.add_argument("--stages", action="store_true", help="also each request-path step")
    args = parser.parse_args()
    # What bench.ingest's targets read from its arguments.
    args.database, args.workers, args.verbose = "sqlite", 1, False
    pin_cores(args.pin)
    requests_file = write_requests(args.requests)
    results: list[tuple[str, Result]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        names = ["acknowledge", *(STAGES if args.stages else []), "verify"]
        targets = {
            "bare": "bare",
            **{name: f"receiver@{variant_tree(name, workdir)}" for name in names},
            "receiver": "receiver",
        }
        for name, target in targets.items():
            results.append((name, bench_target(target, args, requests_file, workdir)))
    bare = results[0][1].requests_per_second
    print(f"\nsqlite, 1 worker, {args.connections} connections, {args.duration}s\n")
    print("| target | req/s | / bare | p99 ms | CPU µs/req user | kernel | total |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results:
        print(
            f"| {name} | {r.requests_per_second:,.0f} | {r.requests_per_second / bare:.2f}x "
            f"| {r.p99_ms:.2f} | {r.user_us:.1f} | {r.system_us:.1f} "
            f"| {r.user_us + r.system_us:.1f} |"
        )


if __name__ == "__main__":
    main()

"""Peak memory of the submitter sending N image files (images are loaded lazily).

    python -m bench.submit_memory --files 100 && python -m bench.submit_memory --files 1000

The sandbox runs in another process, so only the submitter's own memory is measured.
Each file is a ~260 KB noisy PNG; a flat peak across N shows nothing is held per file.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

from PIL import Image

from bench.harness import RESULTS, run_server


def make_files(count: int) -> Path:
    folder = RESULTS / f"images-{count}"
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        path = folder / f"{index:05d}.png"
        if not path.exists():
            Image.frombytes("RGB", (300, 300), os.urandom(300 * 300 * 3)).save(path)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    folder = make_files(args.files)
    size = sum(p.stat().st_size for p in folder.iterdir())

    from submit import SubmitItem, Submitter, VlmRunClient, expand_image_inputs

    argv = [sys.executable, "-m", "sandbox.cli", "serve", "--port", "{port}"]
    with run_server(argv, {"VLMHOOKS_SANDBOX_API_KEYS": "sk-bench"}) as sandbox:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        items = (SubmitItem((source,)) for source in expand_image_inputs([folder]))
        started = time.monotonic()
        with VlmRunClient("sk-bench", f"{sandbox.url}/v1") as client:
            submitter = Submitter(client, domain="image.caption", concurrency=args.concurrency)
            ok = sum(result.ok for result in submitter.submit(items))
        elapsed = time.monotonic() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"| {args.files:,} | {size / 2**20:.0f} MiB | {ok} | {before / 1024:.0f} MiB | "
        f"{peak / 1024:.0f} MiB | +{(peak - before) / 1024:.0f} MiB | "
        f"{args.files / elapsed:.0f}/s |"
    )


if __name__ == "__main__":
    main()

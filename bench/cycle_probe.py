"""`vlm-receiver serve`, with the SQLite group committer's batch cycle timed (bench/cycle.py).

Run as a script (`python bench/cycle_probe.py serve ...`) so that the `receiver` it times
is whichever tree is first on PYTHONPATH: this build's or another commit's. It wraps the
committer's methods from the outside and appends, 200 batches at a time, one JSON line
`[wall time, batch size, cycle, open, plan, close]` (seconds) per batch to
$VLMHOOKS_CYCLE_STATS.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import receiver.group_commit as group_commit
import vlmhooks.batch as batch
from receiver.cli import main

OUT = os.environ["VLMHOOKS_CYCLE_STATS"]
samples: list[list[float]] = []
current: dict[str, float] = {}


def _timed(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args)
        finally:
            current[name] = current.get(name, 0.0) + time.perf_counter() - started

    return wrapper


committer = group_commit.GroupCommitter
for name in ("_open_batch", "_open_if_free"):  # the second exists from commit 4c685a9 on
    if hasattr(committer, name):
        setattr(committer, name, _timed("open", getattr(committer, name)))
committer._close_batch = _timed("close", committer._close_batch)  # type: ignore[method-assign]
batch.PredictionBatch.plan = _timed("plan", batch.PredictionBatch.plan)  # type: ignore[method-assign]
_commit_on_loop = committer._commit_on_loop


async def _cycle(self: Any, pending: list[Any]) -> None:
    current.clear()
    started = time.perf_counter()
    await _commit_on_loop(self, pending)
    cycle = time.perf_counter() - started
    samples.append(
        [time.time(), len(pending), cycle, current.get("open", 0.0), current.get("plan", 0.0),
         current.get("close", 0.0)]
    )  # fmt: skip
    if len(samples) >= 200:
        _append(samples)
        samples.clear()


def _append(rows: list[list[float]]) -> None:
    with open(OUT, "a") as out:
        out.writelines(json.dumps(row) + "\n" for row in rows)


committer._commit_on_loop = _cycle  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

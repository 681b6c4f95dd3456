"""`vlm-receiver serve`, with the SQLite group committer's batch cycle timed (bench/cycle.py).

Run as a script (`python bench/cycle_probe.py serve ...`) so that the `receiver` it times
is whichever tree is first on PYTHONPATH: this build's or another commit's. It wraps the
committer's methods from the outside and appends, 200 batches at a time, one JSON line
per batch to $VLMHOOKS_CYCLE_STATS: `[wall time, batch size, cycle, {phase: [wall, cpu]}]`
(seconds). The phases are open, plan, the statements (`write`) and the COMMIT (`commit`),
wherever each runs. A phase's CPU is its thread's, so wall minus CPU is time spent
waiting: for the GIL, for the disk, or for the other thread.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import RootTransaction

import vlmhooks.store.batch as batch
from receiver.ops.cli import main

OUT = os.environ["VLMHOOKS_CYCLE_STATS"]
samples: list[list[Any]] = []
current: dict[str, list[float]] = {}


def _timed(
    name: str, method: Callable[..., Any], *, helper_only: bool = False
) -> Callable[..., Any]:
    def wrapper(*args: Any) -> Any:
        if helper_only and not threading.current_thread().name.startswith("vlmhooks-commit"):
            return method(*args)
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return method(*args)
        finally:
            spent = current.setdefault(name, [0.0, 0.0])
            spent[0] += time.perf_counter() - started
            spent[1] += time.thread_time() - cpu

    return wrapper


committer: Any
try:
    from receiver.writer.loop_committer import LoopCommitter as committer
except ImportError:  # a tree from before the committers were three classes
    from receiver.writer.group_commit import GroupCommitter as committer
for name in ("_open_batch", "_open_if_free"):  # the second exists from commit 4c685a9 on
    if hasattr(committer, name):
        setattr(committer, name, _timed("open", getattr(committer, name)))
batch.PredictionBatch.plan = _timed("plan", batch.PredictionBatch.plan)  # type: ignore[method-assign]
batch.PredictionBatch.write = _timed("write", batch.PredictionBatch.write)  # type: ignore[method-assign]
# Only the batch's own COMMIT, in the helper thread: not the readers' on the loop.
RootTransaction.commit = _timed("commit", RootTransaction.commit, helper_only=True)  # type: ignore[method-assign]
_commit_on_loop = committer._commit_on_loop


async def _cycle(self: Any, pending: list[Any]) -> None:
    current.clear()
    started = time.perf_counter()
    await _commit_on_loop(self, pending)
    cycle = time.perf_counter() - started
    samples.append([time.time(), len(pending), cycle, dict(current)])
    if len(samples) >= 200:
        _append(samples)
        samples.clear()


def _append(rows: list[list[Any]]) -> None:
    with open(OUT, "a") as out:
        out.writelines(json.dumps(row) + "\n" for row in rows)


committer._commit_on_loop = _cycle  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

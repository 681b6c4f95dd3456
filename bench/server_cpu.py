"""CPU a server spends per request, by thread and by kind (user, kernel), read from /proc.

Throughput says how many requests a core served; this says where the core went. Sampled
around the measured load only (not the warm-up), over the server process and its
children (uvicorn's workers), from each thread's `utime` and `stime` in
`/proc/<pid>/task/<tid>/stat`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ThreadCpu", "cpu_per_request", "thread_times"]

_TICK_SECONDS = 1 / os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


@dataclass(frozen=True)
class ThreadCpu:
    """One thread's CPU over the sampled window, in microseconds per request."""

    pid: int
    tid: int
    user_us: float
    system_us: float

    @property
    def total_us(self) -> float:
        return self.user_us + self.system_us


def _stat_fields(path: Path) -> list[str] | None:
    try:
        text = path.read_text()
    except OSError:  # the thread or process ended meanwhile
        return None
    # The command name is in parentheses and may hold spaces: split after its last ")".
    return text[text.rindex(")") + 2 :].split()


def _children(pid: int) -> list[int]:
    found = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry / "stat")
            if fields is not None and int(fields[1]) == pid:  # field 4, ppid
                found.append(int(entry.name))
    return found


def thread_times(pid: int) -> dict[tuple[int, int], tuple[int, int]]:
    """(pid, tid) -> (user, system) clock ticks, for `pid` and its descendants."""
    times: dict[tuple[int, int], tuple[int, int]] = {}
    pending = [pid]
    while pending:
        current = pending.pop()
        pending.extend(_children(current))
        tasks = _PROC / str(current) / "task"
        try:
            tids = [int(name) for name in os.listdir(tasks)]
        except OSError:
            continue
        for tid in tids:
            fields = _stat_fields(tasks / str(tid) / "stat")
            if fields is not None:  # utime and stime are fields 14 and 15
                times[(current, tid)] = (int(fields[11]), int(fields[12]))
    return times


def cpu_per_request(
    before: dict[tuple[int, int], tuple[int, int]],
    after: dict[tuple[int, int], tuple[int, int]],
    requests: int,
) -> list[ThreadCpu]:
    """Each thread's CPU between the two samples per request, busiest first; threads that
    used none are left out."""
    if requests <= 0:
        return []
    scale = _TICK_SECONDS * 1e6 / requests
    threads = []
    for key, (user, system) in after.items():
        user_before, system_before = before.get(key, (0, 0))
        if user - user_before or system - system_before:
            threads.append(
                ThreadCpu(
                    key[0],
                    key[1],
                    (user - user_before) * scale,
                    (system - system_before) * scale,
                )
            )
    return sorted(threads, key=lambda thread: -thread.total_us)

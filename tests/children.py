"""Child processes the tests start: every wait is bounded, so no child can hang the suite.

A test that waits for a child gives it a time; a child still running after it is killed by
its PID (or its process group, for one started with `start_new_session=True`), reaped, and
the wait's `subprocess.TimeoutExpired` raised, so the test fails instead of hanging and leaves
no process behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import AnyStr

# After SIGKILL a child is gone within milliseconds; this only bounds a pathological case.
KILLED_WAIT_SECONDS = 10.0


def kill(process: subprocess.Popen[AnyStr], *, group: bool = False) -> None:
    """SIGKILL `process` (its whole process group with `group`), unless it already ended."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()


def wait(process: subprocess.Popen[AnyStr], timeout: float, *, group: bool = False) -> int:
    """`process.wait(timeout)`; past it the child is killed and reaped, then TimeoutExpired."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(process, group=group)
        process.wait(timeout=KILLED_WAIT_SECONDS)
        raise


def reap(process: subprocess.Popen[AnyStr], timeout: float, *, group: bool = False) -> int:
    """Wait up to `timeout` for `process`, then kill it: its return code, never an exception."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(process, group=group)
        return process.wait(timeout=KILLED_WAIT_SECONDS)


def communicate(
    process: subprocess.Popen[AnyStr], timeout: float, *, group: bool = False
) -> tuple[AnyStr, AnyStr]:
    """`process.communicate(timeout=timeout)`, killing and reaping the child past it."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(process, group=group)
        # Bounded too: a grandchild may still hold the pipes open.
        process.communicate(timeout=KILLED_WAIT_SECONDS)
        raise


def stop(
    process: subprocess.Popen[AnyStr],
    signum: int,
    timeout: float,
    *,
    group: bool = False,
) -> tuple[AnyStr, AnyStr]:
    """Send `signum` (to the process group with `group`) and collect the output, bounded."""
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
    return communicate(process, timeout, group=group)

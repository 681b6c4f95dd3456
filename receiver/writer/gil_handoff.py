"""A quick GIL hand-off while a helper thread does work the event loop waits for.

CPython gives the GIL to a waiting thread only when the holder blocks, or after the switch
interval (5 ms by default) has passed and the holder is asked to drop it. A busy event
loop rarely blocks, so a helper thread that finishes its C work (SQLite's COMMIT and fsync,
with the GIL released) and needs the GIL for a few microseconds of Python to hand back its
result waits up to 5 ms. Every caller in the batch waits with it (ARCHITECTURE.md, "The
write batch"). While such work is in flight, the interval is 0.2 ms; outside it,
nothing else in the process competes for the GIL on the hot path, and the default returns.

Nested and concurrent uses (several committers in one process, as in the tests) keep the
short interval until the last one ends.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["HANDOFF_SWITCH_INTERVAL_SECONDS", "quick_gil_handoff"]

HANDOFF_SWITCH_INTERVAL_SECONDS = 0.0002

_lock = threading.Lock()
_active = 0
_saved_interval = 0.0


@contextmanager
def quick_gil_handoff() -> Iterator[None]:
    """Within the block, a thread waiting for the GIL gets it within 0.2 ms."""
    global _active, _saved_interval
    with _lock:
        if _active == 0:
            _saved_interval = sys.getswitchinterval()
            sys.setswitchinterval(HANDOFF_SWITCH_INTERVAL_SECONDS)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                sys.setswitchinterval(_saved_interval)

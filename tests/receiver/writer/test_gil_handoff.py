"""`quick_gil_handoff`: the short switch interval holds while any use is open, and the
interval the process had before comes back when the last one closes."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from receiver.writer.gil_handoff import HANDOFF_SWITCH_INTERVAL_SECONDS, quick_gil_handoff


@pytest.fixture
def custom_interval() -> Iterator[float]:
    """A process interval that is not the default, restored after the test."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.003)
    yield 0.003
    sys.setswitchinterval(before)


def test_the_interval_is_short_inside_and_restored_after(custom_interval: float) -> None:
    with quick_gil_handoff():
        assert sys.getswitchinterval() == pytest.approx(HANDOFF_SWITCH_INTERVAL_SECONDS)
    assert sys.getswitchinterval() == pytest.approx(custom_interval)


def test_overlapping_uses_keep_it_short_until_the_last_ends(custom_interval: float) -> None:
    first, second = quick_gil_handoff(), quick_gil_handoff()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    # The first use ended while the second is still in flight: still short.
    assert sys.getswitchinterval() == pytest.approx(HANDOFF_SWITCH_INTERVAL_SECONDS)
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == pytest.approx(custom_interval)


def test_uses_from_several_threads_restore_once(custom_interval: float) -> None:
    inside = threading.Barrier(4)
    leave = threading.Event()
    seen: list[float] = []

    def use() -> None:
        with quick_gil_handoff():
            inside.wait(timeout=10)
            seen.append(sys.getswitchinterval())
            leave.wait(timeout=10)

    threads = [threading.Thread(target=use) for _ in range(3)]
    for thread in threads:
        thread.start()
    inside.wait(timeout=10)  # all three are inside
    leave.set()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == [pytest.approx(HANDOFF_SWITCH_INTERVAL_SECONDS)] * 3
    assert sys.getswitchinterval() == pytest.approx(custom_interval)


def test_an_exception_inside_still_restores(custom_interval: float) -> None:
    with pytest.raises(RuntimeError), quick_gil_handoff():
        raise RuntimeError("the commit failed")
    assert sys.getswitchinterval() == pytest.approx(custom_interval)

"""The inline writer (serverless): each write a batch of one, committed before `run` returns.

No thread and no task: a function instance serves one invocation at a time and may be frozen
between them, so nothing may be left running after a write.
"""

from __future__ import annotations

import threading
from typing import TypeVar

from sqlalchemy.engine import Engine
from typing_extensions import Unpack

from receiver.writer.group_commit import CommitterOptions, GroupCommitter, WriterStopped
from receiver.writer.pending_writes import PendingWrite

__all__ = ["InlineCommitter"]

T = TypeVar("T")


class InlineCommitter(GroupCommitter):
    """Applies and commits each write on the caller's thread."""

    def __init__(self, engine: Engine, **options: Unpack[CommitterOptions]) -> None:
        super().__init__(engine, **options)
        self._inline_lock = threading.Lock()

    async def _submit(self, pending: PendingWrite[T]) -> T:
        with self._lock:
            if not self._running:
                raise WriterStopped("the writer is not running")
        # On the caller's thread, blocking its event loop for one commit: a thread hop
        # would buy nothing for one invocation at a time.
        with self._inline_lock:
            try:
                self._commit([pending])
            finally:
                # Back to the pool: a frozen instance must not sit on a checked-out
                # connection, and the next invocation's checkout pre-pings it.
                self._drop_connection()
        if pending.error is not None:
            raise pending.error
        result: T = pending.result
        return result

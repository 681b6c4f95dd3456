"""Which group committer a process uses, decided in one place (like uvicorn's `auto.py`)."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from typing_extensions import Unpack

from receiver.writer.group_commit import CommitterOptions, GroupCommitter
from receiver.writer.inline_committer import InlineCommitter
from receiver.writer.loop_committer import LoopCommitter
from receiver.writer.thread_committer import ThreadCommitter

__all__ = ["committer_for"]


def committer_for(
    engine: Engine, *, serverless: bool = False, **options: Unpack[CommitterOptions]
) -> GroupCommitter:
    """The writer for `engine`: inline when `serverless` (nothing may outlive an
    invocation); on the event loop for SQLite, whose statements cost microseconds and
    whose COMMIT alone goes to a thread; else a writer thread (PostgreSQL)."""
    if serverless:
        return InlineCommitter(engine, **options)
    if engine.dialect.name == "sqlite":
        return LoopCommitter(engine, **options)
    return ThreadCommitter(engine, **options)

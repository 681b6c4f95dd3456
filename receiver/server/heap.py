"""Keep the garbage collector's full passes off the request path of a long-lived server.

A receiver process starts with a great many tracked objects (SQLAlchemy, pydantic, Starlette,
the app's own tables), all of them alive for the process's lifetime. CPython's oldest
generation is collected whenever enough objects have been promoted into it, and each such
pass walked every one of them: a stall of the event loop every few seconds under load, which
was the whole p99 of a callback (bench/README.md, "Issue 13, third pass", "The p99 was the
garbage collector").

`gc.freeze()` after start-up moves what exists then into the permanent generation, which
no collection walks; objects created afterwards are collected as before. This is the
pre-fork technique CPython documents for `gc.freeze` (and Instagram's servers use).
It is done only by `vlm-receiver serve`'s app, never by `create_app` in general: a test
process builds many apps, and whatever garbage is frozen is never freed.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_heap"]


def freeze_startup_heap() -> int:
    """Collect what start-up left behind, then freeze the rest; the number frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()

"""The forward-only rule of a prediction row, once: as the upsert's SQL and as the plan's Python.

A higher status rank wins; within a non-terminal rank (running <-> paused) new content wins;
a terminal row never changes again. The ranks are the contract's (`schemas.enums`); the
database applies the rule (several processes write), and a write batch replays it in Python
to plan its statements (ARCHITECTURE.md, "The write batch"). Both forms are built here, from
the same rank and the same columns, and a test holds them to the same answers.
"""

from __future__ import annotations

from schemas.enums import STATUS_RANK, TERMINAL_STATUSES
from vlmhooks.store.tables import PREDICTION

__all__ = ["CONTENT", "RANK", "TERMINAL_RANK", "forward_only_sql", "moves_forward"]

# The columns the rule reads, from the table declaration.
RANK = PREDICTION.c.status_rank.name
CONTENT = PREDICTION.c.body_sha256.name
# Terminal statuses share the top rank, and only they hold it: so "below the terminal
# rank" is "not terminal" for a stored row.
TERMINAL_RANK = min(STATUS_RANK[status] for status in TERMINAL_STATUSES)
if any(
    (rank >= TERMINAL_RANK) != (status in TERMINAL_STATUSES) for status, rank in STATUS_RANK.items()
):
    raise RuntimeError("schemas.enums: the terminal statuses must be exactly the top rank")


def moves_forward(stored_rank: int, stored_content: str, rank: int, content: str) -> bool:
    """Whether a write of (`rank`, `content`) replaces a row holding (`stored_*`)."""
    return rank > stored_rank or (
        rank == stored_rank and stored_rank < TERMINAL_RANK and content != stored_content
    )


def forward_only_sql(stored: str, incoming: str) -> str:
    """`moves_forward` as a SQL condition over two row names (PostgreSQL and SQLite 3.35+):
    the stored row (`stored`, e.g. the table) and the incoming one (e.g. `excluded`)."""
    return (
        f"{incoming}.{RANK} > {stored}.{RANK}"
        f" OR ({incoming}.{RANK} = {stored}.{RANK}"
        f" AND {stored}.{RANK} < {TERMINAL_RANK}"
        f" AND {incoming}.{CONTENT} != {stored}.{CONTENT})"
    )

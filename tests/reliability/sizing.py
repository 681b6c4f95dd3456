"""How big each reliability test runs: `VLMHOOKS_RELIABILITY_SCALE` (`ci`, the default, or
`full`), with any one count overridden by `VLMHOOKS_RELIABILITY_<NAME>`.
"""

from __future__ import annotations

import os
from typing import Literal

SCALE_ENV = "VLMHOOKS_RELIABILITY_SCALE"
COUNT_ENV_PREFIX = "VLMHOOKS_RELIABILITY_"
SEED_ENV = "VLMHOOKS_RELIABILITY_SEED"
DEFAULT_SEED = 20240611
Scale = Literal["ci", "full"]

# name: (CI size, full size). The full sizes are the issue's; CI keeps the directory short.
# One kill per crash test in CI: each of the four (SQLite and PostgreSQL, one worker and two)
# still kills under load (callbacks fail while it is down) and loses nothing; every further
# kill costs seconds of the sender's backoff and proves the same thing again.
SIZES: dict[str, tuple[int, int]] = {
    "CRASH_PREDICTIONS": (160, 3000),
    "CRASH_KILLS": (1, 5),
    "STORM_PREDICTIONS": (200, 1000),
    "STORM_CONNECTIONS": (32, 32),
    "FUZZ_EXAMPLES": (360, 6000),
    "SCHEMATHESIS_EXAMPLES": (12, 150),
}


def scale() -> Scale:
    value = os.environ.get(SCALE_ENV, "ci").strip().lower() or "ci"
    if value not in ("ci", "full"):
        raise ValueError(f"{SCALE_ENV} must be 'ci' or 'full', not {value!r}")
    return "full" if value == "full" else "ci"


def size(name: str) -> int:
    """The count `name` runs with: its override, else its size at the current scale."""
    ci, full = SIZES[name]
    override = os.environ.get(COUNT_ENV_PREFIX + name)
    if override is not None:
        if not (override.isascii() and override.isdigit()) or int(override) < 1:
            raise ValueError(f"{COUNT_ENV_PREFIX}{name} must be a positive integer")
        return int(override)
    return full if scale() == "full" else ci


def seed() -> int:
    """The random seed for a test's draws: fixed, so a failure reruns the same way;
    `VLMHOOKS_RELIABILITY_SEED` explores others."""
    override = os.environ.get(SEED_ENV)
    if override is None:
        return DEFAULT_SEED
    if not (override.isascii() and override.isdigit()):
        raise ValueError(f"{SEED_ENV} must be a non-negative integer")
    return int(override)

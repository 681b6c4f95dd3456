"""The deterministic draw (every sandbox value comes from SHA-256 of the pixels, never ``random``)
and the whole-cent money arithmetic the shapes share, so that totals add up exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date, timedelta
from typing import TypeVar

__all__ = ["EPOCH", "Draw", "money", "percent_of"]

EPOCH = date(2023, 1, 1)  # where drawn dates start by default

T = TypeVar("T")


class Draw:
    """A stream of numbers from SHA-256(seed, salt, counter): stable across Python versions."""

    def __init__(self, seed: bytes, salt: str) -> None:
        self._seed = seed + salt.encode()
        self._counter = 0

    def below(self, n: int) -> int:
        if n <= 1:
            return 0
        block = hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
        self._counter += 1
        return int.from_bytes(block[:8], "big") % n

    def integer(self, low: int, high: int) -> int:
        return low + self.below(high - low + 1)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.below(len(options))]

    def sample(self, options: Sequence[T], k: int) -> list[T]:
        pool = list(options)
        return [pool.pop(self.below(len(pool))) for _ in range(min(k, len(pool)))]

    def digits(self, n: int) -> str:
        return "".join(str(self.below(10)) for _ in range(n))

    def day(self, start: date = EPOCH, span_days: int = 900) -> date:
        return start + timedelta(days=self.below(span_days))

    def raw(self, n: int) -> bytes:
        return bytes(self.below(256) for _ in range(n))


def money(cents: int) -> float:
    """An amount in whole cents as the two-decimal number a response carries."""
    return round(cents / 100, 2)


def percent_of(cents: int, basis_points: int) -> int:
    return (cents * basis_points + 5_000) // 10_000  # half-up, in whole cents

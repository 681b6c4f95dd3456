"""Gauges read from the database at scrape time, shared by every process: whether the database
answers (`vlmhooks_database_ready`) and the overdue callbacks."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["DatabaseGauges"]


class DatabaseGauges(Collector):
    """`overdue` is None when the database did not answer: the gauge is then absent rather
    than a zero that would clear the alert."""

    def __init__(self, *, ready: bool, overdue: int | None) -> None:
        self.ready = ready
        self.overdue = overdue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "vlmhooks_database_ready",
            "1 when this scrape's database reads succeeded, else 0",
            value=1 if self.ready else 0,
        )
        if self.overdue is not None:
            yield GaugeMetricFamily(
                "vlmhooks_callbacks_overdue",
                "Submissions with no callback VLMHOOKS_OVERDUE_AFTER after they were sent "
                "(within the callback token's lifetime)",
                value=self.overdue,
            )

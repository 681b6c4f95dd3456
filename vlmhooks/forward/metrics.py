"""Forwarding's Prometheus metrics: attempts by outcome and commit-to-acknowledgement latency
(per process), and the backlog (database-wide, read at scrape time)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from vlmhooks.forward.registry import Backlog, backlog

__all__ = ["ForwardBacklogCollector", "ForwardMetrics", "read_backlog"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 600.0)


class ForwardMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "vlmhooks_forward_attempts",
            "Forwarding attempts, by destination and outcome (delivered, retry, dead, gone)",
            ["destination", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "vlmhooks_forward_latency_seconds",
            "From the change's commit to the destination's acknowledgement",
            ["destination"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )


class ForwardBacklogCollector(Collector):
    """Gauges from one backlog read; the outbox is shared by every process, so these are
    collected per scrape rather than kept by one process."""

    def __init__(self, backlog: Mapping[str, Backlog], now: datetime) -> None:
        self.backlog = backlog
        self.now = now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pending = GaugeMetricFamily(
            "vlmhooks_forward_backlog", "Changes not yet delivered", labels=["destination"]
        )
        dead = GaugeMetricFamily(
            "vlmhooks_forward_dead_letters", "Changes given up on", labels=["destination"]
        )
        oldest = GaugeMetricFamily(
            "vlmhooks_forward_oldest_pending_age_seconds",
            "Age of the oldest change not yet delivered",
            labels=["destination"],
        )
        for destination_id, counted in sorted(self.backlog.items()):
            pending.add_metric([destination_id], counted.pending)
            dead.add_metric([destination_id], counted.dead)
            if counted.oldest_pending is not None:
                age = max(0.0, (self.now - counted.oldest_pending).total_seconds())
                oldest.add_metric([destination_id], age)
        yield pending
        yield dead
        yield oldest


def read_backlog(engine: Engine) -> dict[str, Backlog]:
    with engine.connect() as connection:
        return backlog(connection)

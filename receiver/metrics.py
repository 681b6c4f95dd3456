"""Prometheus metrics, one registry per app (never module globals, so tests stay isolated)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass
class ReceiverMetrics:
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def count_callback(self, verdict: str) -> None:
        """`callbacks{verdict}` + 1, with the labelled child looked up once per verdict."""
        child = self._verdicts.get(verdict)
        if child is None:
            child = self._verdicts[verdict] = self.callbacks.labels(verdict)
        child.inc()

    def __post_init__(self) -> None:
        self._verdicts: dict[str, Counter] = {}
        self.callbacks = Counter(
            "vlmhooks_callbacks",
            "Callbacks received, by verdict (stored, updated, duplicate, stale, rejected)",
            ["verdict"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "vlmhooks_callback_refusals",
            "Callbacks refused, by reason (the problem type: invalid-token, ...)",
            ["reason"],
            registry=self.registry,
        )
        self.ingest_latency = Histogram(
            "vlmhooks_ingest_latency_seconds",
            "Time from request start to durable acknowledgement",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.listeners = Gauge(
            "vlmhooks_event_listeners",
            "Open SSE streams (kind=sse) and waiting long polls (kind=long_poll)",
            ["kind"],
            registry=self.registry,
        )
        self.wal_frames = Gauge(
            "vlmhooks_sqlite_wal_frames",
            "SQLite WAL frames (pages) at the last background checkpoint: all in the WAL "
            "(kind=logged), and those it could not copy into the database file because a "
            "reader still needs them (kind=uncopied); served SQLite only",
            ["kind"],
            registry=self.registry,
        )
        self.commit_batch_size = Histogram(
            "vlmhooks_group_commit_batch_size",
            "Writes committed together in one transaction",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )

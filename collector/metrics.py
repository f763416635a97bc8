"""The collector's own health, as Prometheus metrics (served at ``/metrics``).

Each collector has a registry of its own, so several can live in one process (tests do).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_PREFIX = "seamwatch_collector"


class CollectorMetrics:
    """Counters for what was accepted, rejected and dropped, plus queue and insert figures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.accepted_spans = Counter(
            f"{_PREFIX}_accepted_spans",
            "Spans acknowledged (written to the spool), by protocol.",
            ["protocol"],
            registry=self.registry,
        )
        self.rejected_spans = Counter(
            f"{_PREFIX}_rejected_spans",
            "Spans refused (the client was told), by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.refused_requests = Counter(
            f"{_PREFIX}_refused_requests",
            "Requests answered with an error, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.late_spans = Counter(
            f"{_PREFIX}_spans_late_for_detectors",
            "Spans acknowledged after the detectors had judged the minute they started in"
            " (SEAMWATCH_EVALUATION_DELAY_SECONDS after its end): stored and shown, but no"
            " detector counts them. Only spans that name a flow (integration.flow).",
            registry=self.registry,
        )
        self.dropped_spans = Counter(
            f"{_PREFIX}_dropped_spans",
            "Acknowledged spans the store refused for good (kept aside in the spool).",
            registry=self.registry,
        )
        self.queued_spans = Gauge(
            f"{_PREFIX}_queued_spans",
            "Spans decoded and waiting for the spool or the store.",
            registry=self.registry,
        )
        self.spool_bytes = Gauge(
            f"{_PREFIX}_spool_bytes",
            "Size on disk of the spooled spans the store does not hold yet.",
            registry=self.registry,
        )
        self.spool_segments = Gauge(
            f"{_PREFIX}_spool_segments",
            "Spool segments (groups of acknowledged requests) not yet in the store.",
            registry=self.registry,
        )
        self.insert_seconds = Histogram(
            f"{_PREFIX}_insert_seconds",
            "Time of one batch insert into the store.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.inserted_spans = Counter(
            f"{_PREFIX}_inserted_spans",
            "Spans written to the store.",
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)

"""The collector's own metrics, read from its Prometheus endpoint, for the Collector page."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

_PREFIX = "seamwatch_collector_"
_TIMEOUT_SECONDS = 5.0


class MetricsUnavailable(Exception):
    """The collector's /metrics could not be read; the message says why."""


@dataclass
class CollectorHealth:
    """One reading of the collector's counters."""

    accepted_spans: dict[str, float] = field(default_factory=dict)
    rejected_spans: dict[str, float] = field(default_factory=dict)
    refused_requests: dict[str, float] = field(default_factory=dict)
    dropped_spans: float = 0.0
    inserted_spans: float = 0.0
    queued_spans: float = 0.0
    spool_bytes: float = 0.0
    insert_count: float = 0.0
    insert_seconds_total: float = 0.0
    # when the counters began (the client library's ``_created`` sample), in Unix seconds
    counting_since: float | None = None

    @property
    def mean_insert_seconds(self) -> float | None:
        """Average time of one batch insert since start, or None before the first."""
        return self.insert_seconds_total / self.insert_count if self.insert_count else None


def parse_metrics(text: str) -> CollectorHealth:
    """The collector's figures out of a Prometheus text exposition."""
    health = CollectorHealth()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            _take(health, sample.name.removeprefix(_PREFIX), sample.labels, sample.value)
    return health


def _take(health: CollectorHealth, name: str, labels: dict[str, str], value: float) -> None:
    if name == "accepted_spans_total":
        health.accepted_spans[labels.get("protocol", "")] = value
    elif name == "rejected_spans_total":
        health.rejected_spans[labels.get("reason", "")] = value
    elif name == "refused_requests_total":
        health.refused_requests[labels.get("reason", "")] = value
    elif name == "dropped_spans_total":
        health.dropped_spans = value
    elif name == "inserted_spans_total":
        health.inserted_spans = value
    elif name == "inserted_spans_created":
        health.counting_since = value
    elif name == "queued_spans":
        health.queued_spans = value
    elif name == "spool_bytes":
        health.spool_bytes = value
    elif name == "insert_seconds_count":
        health.insert_count = value
    elif name == "insert_seconds_sum":
        health.insert_seconds_total = value


def read_collector_health(base_url: str) -> CollectorHealth:
    """Fetch and parse ``base_url + '/metrics'``; raise MetricsUnavailable on failure."""
    url = f"{base_url}/metrics"
    try:
        response = httpx.get(url, timeout=_TIMEOUT_SECONDS)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise MetricsUnavailable(f"Cannot read {url}: {exc}") from exc
    return parse_metrics(response.text)

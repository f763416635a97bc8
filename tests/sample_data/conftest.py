"""Shared runs of the simulator: short windows of simulated time, exported in memory."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sample_data.simulator import SimSummary, SimulationConfig, run

# A Monday; 08:00 UTC is the start of the business day of the simulated company.
MONDAY = datetime(2025, 3, 3, tzinfo=UTC)

Simulate = Callable[..., tuple[SimSummary, list[ReadableSpan]]]


def simulate_in_memory(**overrides: object) -> tuple[SimSummary, list[ReadableSpan]]:
    """Run the simulator into an in-memory exporter; returns the summary and the spans."""
    settings: dict[str, object] = {
        "seed": 7,
        "start": MONDAY + timedelta(hours=9),
        "duration": timedelta(minutes=30),
        "incidents": False,
    }
    settings.update(overrides)
    exporter = InMemorySpanExporter()
    summary = run(SimulationConfig(**settings), exporter=exporter)
    return summary, list(exporter.get_finished_spans())


@pytest.fixture(scope="session")
def business_hour() -> tuple[SimSummary, list[ReadableSpan]]:
    """Two busy simulated hours, no incidents, shared by the read-only tests."""
    return simulate_in_memory(duration=timedelta(hours=2))

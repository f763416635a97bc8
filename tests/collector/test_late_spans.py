"""Spans that arrive after the detectors have judged their minute are counted and logged."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from collector.late_spans import LateSpans
from collector.service import Collector

LATE_METRIC = "seamwatch_collector_spans_late_for_detectors_total"
FLOW = "billing.batch-settlement"


def _span(number: int, started: datetime, flow: str | None = FLOW) -> dict:
    start_ns = int(started.timestamp() * 1e9)
    attributes = [{"key": "integration.flow", "value": {"stringValue": flow}}] if flow else []
    return {
        "traceId": f"{number:032x}",
        "spanId": f"{number:016x}",
        "name": "POST /settlements",
        "kind": 3,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + 1_000_000),
        "attributes": attributes,
    }


def _send(collector: Collector, spans: list[dict]) -> None:
    body = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    response = httpx.post(f"{collector.endpoint}/v1/traces", json=body)
    assert response.status_code == 200, response.text


def _late_count(collector: Collector) -> float:
    text = httpx.get(f"{collector.endpoint}/metrics").text
    line = next(line for line in text.splitlines() if line.startswith(LATE_METRIC))
    return float(line.split()[1])


def test_a_span_of_a_minute_long_judged_is_counted_and_logged(running_collector, caplog):
    now = datetime.now(UTC)
    with caplog.at_level(logging.WARNING, logger="collector.late_spans"):
        _send(
            running_collector,
            [
                _span(1, now - timedelta(minutes=10)),  # a batch job reporting at its end
                _span(2, now),  # the minute under way: judged 30 s after it ends
                _span(3, now - timedelta(minutes=10), flow=None),  # no detector reads it
            ],
        )
    assert _late_count(running_collector) == 1
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert message.startswith("1 span(s) arrived after the detectors had judged their minute")
    assert f"flows '{FLOW}' (1)" in message
    assert "SEAMWATCH_EVALUATION_DELAY_SECONDS (now 30 s)" in message


def test_a_longer_delay_waits_for_the_span(store, collector_settings):
    collector_settings.evaluation_delay_seconds = 3600
    collector = Collector(store, collector_settings)
    collector.start()
    try:
        _send(collector, [_span(1, datetime.now(UTC) - timedelta(minutes=10))])
        assert _late_count(collector) == 0
    finally:
        collector.stop()


@pytest.mark.parametrize(
    ("received", "first_unjudged"),
    [
        # 10:01 ends at 10:02 and is judged at 10:02:30: a span of it is late only after that
        ("10:02:30", "10:01"),
        ("10:02:30.000001", "10:02"),
        ("10:02:29", "10:01"),
        ("10:03:29", "10:02"),
    ],
)
def test_a_minute_is_late_once_its_end_plus_the_delay_has_passed(received, first_unjudged):
    day = "2026-12-04T"
    now = datetime.fromisoformat(f"{day}{received}+00:00")
    late = LateSpans(timedelta(seconds=30), Counter("late", "", registry=CollectorRegistry()))
    cutoff = late.first_unjudged_minute_ns(int(now.timestamp()) * 10**9 + now.microsecond * 1000)
    expected = datetime.fromisoformat(f"{day}{first_unjudged}:00+00:00")
    assert cutoff == int(expected.timestamp()) * 10**9


def test_many_late_requests_log_one_line_a_minute(running_collector, caplog):
    old = datetime.now(UTC) - timedelta(hours=1)
    with caplog.at_level(logging.WARNING, logger="collector.late_spans"):
        for number in range(5):
            _send(running_collector, [_span(number + 1, old)])
            time.sleep(0.01)
    assert _late_count(running_collector) == 5
    assert len(caplog.records) == 1

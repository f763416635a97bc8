"""Spans that arrive after the detectors have judged their minute are counted and logged."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import httpx
import pyarrow as pa

from collector.late_spans import LateSpans
from collector.service import Collector
from seamwatch import runtime

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


def _judged_until(store, collector: Collector, moment: datetime) -> None:
    """Store ``moment`` as how far the detectors have judged, as their runner does."""
    state = pa.table(
        {
            "runner": ["default"],
            "evaluated_until": pa.array([moment], pa.timestamp("ms", tz="UTC")),
            "updated_at": pa.array([moment], pa.timestamp("ms", tz="UTC")),
            "version": pa.array([int(moment.timestamp() * 1000)], pa.uint64()),
        }
    )
    store.insert_arrow("detector_state", state)
    collector.judged_until.refresh()


def test_a_span_of_a_minute_the_detectors_judged_is_counted_and_logged(
    store, running_collector, caplog
):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    _judged_until(store, running_collector, now - timedelta(minutes=1))
    with caplog.at_level(logging.WARNING, logger="collector.late_spans"):
        _send(
            running_collector,
            [
                _span(1, now - timedelta(minutes=10)),  # a batch job reporting at its end
                _span(2, now - timedelta(minutes=1)),  # the first minute not judged yet
                _span(3, now - timedelta(minutes=10), flow=None),  # no detector reads it
            ],
        )
    assert _late_count(running_collector) == 1
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert message.startswith("1 span(s) arrived after the detectors had judged their minute")
    assert f"flows '{FLOW}' (1)" in message
    assert "SEAMWATCH_EVALUATION_DELAY_SECONDS (now 30 s)" in message


def test_old_spans_are_not_late_before_the_detectors_judged_anything(running_collector, caplog):
    # a demo's backfill sends two days of spans before the detectors' first catch-up, which
    # judges them all: warning that no detector counts them was wrong
    running_collector.judged_until.refresh()
    with caplog.at_level(logging.WARNING, logger="collector.late_spans"):
        _send(running_collector, [_span(1, datetime.now(UTC) - timedelta(days=2))])
    assert _late_count(running_collector) == 0
    assert caplog.records == []


def _quickly_refreshing_collector(store, settings) -> Collector:
    """A collector reading the detectors' position every 50 ms rather than every 10 s."""
    collector = Collector(store, settings)
    collector.pipeline.late_spans = LateSpans(
        timedelta(seconds=30),
        collector.metrics.late_spans,
        collector.judged_until,
        refresh_seconds=0.05,
    )
    return collector


def test_the_receiver_reads_the_detectors_position_as_it_moves(store, collector_settings):
    collector = _quickly_refreshing_collector(store, collector_settings)
    collector.start()
    try:
        moment = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
        _judged_until(store, collector, moment)
        _judged_until(store, collector, moment + timedelta(hours=1))  # a later position wins
        assert collector.judged_until() == int((moment + timedelta(hours=1)).timestamp()) * 10**9
        _send(collector, [_span(1, moment + timedelta(minutes=30))])
        assert _late_count(collector) == 1
    finally:
        collector.stop()


def test_counts_held_back_are_logged_within_the_minute_and_at_the_stop(
    store, collector_settings, caplog, monkeypatch
):
    # they waited for the next late span: a one-off late batch was never logged
    monkeypatch.setattr("collector.late_spans._LOG_INTERVAL_SECONDS", 0.3)
    collector = _quickly_refreshing_collector(store, collector_settings)
    collector.start()
    old = datetime.now(UTC) - timedelta(hours=1)
    try:
        _judged_until(store, collector, datetime.now(UTC) - timedelta(minutes=1))
        with caplog.at_level(logging.WARNING, logger="collector.late_spans"):
            _send(collector, [_span(1, old)])  # logged at once
            _send(collector, [_span(2, old), _span(3, old)])  # held back
            deadline = time.monotonic() + 5
            while len(caplog.records) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert [r.getMessage().split(" span(s)")[0] for r in caplog.records] == ["1", "2"]
            _send(collector, [_span(4, old)])  # within the interval: written at the stop
    finally:
        collector.stop()
    assert caplog.records[-1].getMessage().startswith("1 span(s) since the last such line")
    assert len(caplog.records) == 3


def test_many_late_requests_log_one_line_a_minute(store, running_collector, caplog):
    old = datetime.now(UTC) - timedelta(hours=1)
    _judged_until(store, running_collector, datetime.now(UTC) - timedelta(minutes=1))
    with caplog.at_level(logging.WARNING, logger="collector.late_spans"):
        for number in range(5):
            _send(running_collector, [_span(number + 1, old)])
            time.sleep(0.01)
    assert _late_count(running_collector) == 5
    assert len(caplog.records) == 1


def test_detectors_of_this_process_make_spans_of_the_minutes_they_judge_late_at_once(
    store, running_collector
):
    # a span sent just as the detectors of `seamwatch up` read their minute was missed by
    # them, and not counted late: the receiver read their position every 10 s only
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    runtime.judging(now)
    _send(running_collector, [_span(1, now - timedelta(seconds=30))])
    assert _late_count(running_collector) == 1
    _send(running_collector, [_span(2, now)])  # the minute not judged yet
    assert _late_count(running_collector) == 1


def test_what_was_acknowledged_is_stored_before_detectors_of_this_process_judge(
    store, collector_settings
):
    # acknowledged spans wait in the spool for a fuller batch; detectors reading the store
    # then would not see them, and they would not count as late either
    settings = collector_settings.model_copy(update={"batch_flush_interval_millis": 60_000})
    collector = Collector(store, settings)
    collector.start()
    try:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        _send(collector, [_span(1, now - timedelta(seconds=50))])  # answered once stored
        _send(collector, [_span(2, now - timedelta(seconds=40))])  # then answered once spooled
        assert not collector.writer.wait_until_stored(0.2)  # held for a fuller batch
        began = time.monotonic()
        runtime.judging(now)
        assert collector.writer.wait_until_stored(0)
        assert time.monotonic() - began < 5
        assert _late_count(collector) == 0
    finally:
        collector.stop()
    runtime.judging(now)  # a stopped receiver is no longer told
